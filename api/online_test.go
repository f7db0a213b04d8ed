package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

func TestOnline(t *testing.T) {
	h := newHarness(t)
	st := h.status("GID_a@@@dev-1")
	if st.Online || st.State != presence.StateOffline || st.LastEventAt != nil {
		t.Fatalf("unknown client: %+v", st)
	}

	h.apply(ev("GID_a@@@dev-1", "ch1", presence.EventConnect, 1000))
	st = h.status("GID_a@@@dev-1")
	if !st.Online || st.OpenChannels != 1 || st.Since == nil || presence.Millis(*st.Since) != 1000 || presence.Millis(*st.LastEventAt) != 1000 {
		t.Fatalf("after connect: %+v", st)
	}

	// Takeover: the new channel first, then the old one's tcpclean.
	h.apply(ev("GID_a@@@dev-1", "ch2", presence.EventConnect, 2000))
	h.apply(ev("GID_a@@@dev-1", "ch1", presence.EventTCPClean, 2001))
	st = h.status("GID_a@@@dev-1")
	if !st.Online || st.OpenChannels != 1 || presence.Millis(*st.Since) != 1000 || presence.Millis(*st.LastEventAt) != 2001 {
		t.Fatalf("after takeover: %+v", st)
	}

	h.apply(ev("GID_a@@@dev-1", "ch2", presence.EventTCPClean, 3000))
	st = h.status("GID_a@@@dev-1")
	if st.Online || st.OpenChannels != 0 || st.Since != nil || presence.Millis(*st.LastEventAt) != 3000 {
		t.Fatalf("after tcpclean: %+v", st)
	}

	// A client id with '/' travels escaped.
	h.apply(ev("a/b", "ch3", presence.EventConnect, 1000))
	st = h.status("a/b")
	if st.ClientID != "a/b" || !st.Online {
		t.Fatalf("escaped id: %+v", st)
	}
}

func TestOnlineUnknownOnSilentNode(t *testing.T) {
	h := newHarness(t)
	h.apply(ev("u1", "u1", presence.EventConnect, 1000)) // on node n1
	if _, err := h.store.Pool().Exec(context.Background(),
		`INSERT INTO nodes (node, epoch, state, lease_ms, silent_since) VALUES ('n1', 'e1', 'silent', 1000, now())`); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := h.status("u1")
		if st.State == presence.StateUnknown {
			// Unknown is not online: the node that held the channel
			// is silent, so the honest answer is "we don't know".
			if st.Online || st.Node != "n1" || st.Since == nil || st.OpenChannels != 1 {
				t.Fatalf("unknown status %+v", st)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %+v, want unknown once n1 is silent", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOnlineErrors(t *testing.T) {
	h := newHarness(t)
	h.expectProblem(http.MethodGet, "/clients/a+b/online", "", http.StatusBadRequest, "clientId")
	h.expectProblem(http.MethodGet, "/clients/"+strings.Repeat("x", 129)+"/online", "", http.StatusBadRequest, "clientId")
	h.expectProblem(http.MethodPost, "/clients/a/online", "", http.StatusMethodNotAllowed, "")

	// A view whose feed is lost does not answer.
	h.live.Lost(nil)
	p := h.expectProblem(http.MethodGet, "/clients/a/online", "", http.StatusServiceUnavailable, "")
	if !strings.Contains(p.Detail, "not current") {
		t.Fatalf("detail %q", p.Detail)
	}
	h.expectProblem(http.MethodPost, "/clients/online", `{"clientIds":["a"]}`, http.StatusServiceUnavailable, "")
	h.expectProblem(http.MethodGet, "/clients", "", http.StatusServiceUnavailable, "")
	h.expectProblem(http.MethodGet, "/stats", "", http.StatusServiceUnavailable, "")
	h.expectProblem(http.MethodGet, "/readyz", "", http.StatusServiceUnavailable, "")
	if r := h.do(http.MethodGet, "/readyz", ""); r.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
}

func TestOnlineBatch(t *testing.T) {
	h := newHarness(t)
	h.apply(ev("b1", "c1", presence.EventConnect, 100), ev("b3", "c3", presence.EventConnect, 100), ev("b3", "c3", presence.EventTCPClean, 200))
	r := h.do(http.MethodPost, "/clients/online", `{"clientIds":["b1","b2","b3","b1"]}`)
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var out onlineBatchResponse
	mustDecode(t, r.body, &out)
	got := ""
	for _, s := range out.Results {
		got += fmt.Sprintf("%s=%v ", s.ClientID, s.Online)
	}
	if got != "b1=true b2=false b3=false b1=true " {
		t.Fatalf("results %s", got)
	}

	ids := make([]string, MaxBatchClientIDs)
	for i := range ids {
		ids[i] = fmt.Sprintf("%q", fmt.Sprintf("id-%d", i))
	}
	r = h.do(http.MethodPost, "/clients/online", `{"clientIds":[`+strings.Join(ids, ",")+`]}`)
	if r.status != http.StatusOK {
		t.Fatalf("1000 ids: status %d", r.status)
	}
	mustDecode(t, r.body, &out)
	if len(out.Results) != MaxBatchClientIDs || out.Results[999].ClientID != "id-999" {
		t.Fatalf("1000 ids: %d results", len(out.Results))
	}
}

func TestOnlineBatchErrors(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxBodyBytes = 64 << 10 })
	ids := make([]string, MaxBatchClientIDs+1)
	for i := range ids {
		ids[i] = `"x"`
	}
	tests := []struct {
		name, body string
		status     int
		field      string
		detail     string // in the problem's detail, when set
	}{
		{"too many ids", `{"clientIds":[` + strings.Join(ids, ",") + `]}`, http.StatusBadRequest, "clientIds", ""},
		{"invalid id", `{"clientIds":["ok","bad#id",""]}`, http.StatusBadRequest, "clientIds[1]", ""},
		{"empty id", `{"clientIds":["ok","bad#id",""]}`, http.StatusBadRequest, "clientIds[2]", ""},
		{"missing ids", `{}`, http.StatusBadRequest, "clientIds", ""},
		{"not JSON", `{"clientIds":`, http.StatusBadRequest, "body", "the JSON ends early"},
		{"syntax error", `{"clientIds":[x]}`, http.StatusBadRequest, "body", "syntax error at byte 15"},
		{"empty body", ``, http.StatusBadRequest, "body", "the body is empty"},
		{"unknown field", `{"clientIds":[],"x":1}`, http.StatusBadRequest, "body", `unknown field "x"`},
		{"wrong type", `{"clientIds":"a"}`, http.StatusBadRequest, "body", `field "clientIds" must be a JSON array, not a JSON string`},
		{"wrong element type", `{"clientIds":[1]}`, http.StatusBadRequest, "body", `field "clientIds" must be a JSON string, not a JSON number`},
		{"not an object", `["a"]`, http.StatusBadRequest, "body", "must be a JSON object, not a JSON array"},
		{"too large", `{"clientIds":["` + strings.Repeat("a", 70<<10) + `"]}`, http.StatusRequestEntityTooLarge, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h.t = t
			p := h.expectProblem(http.MethodPost, "/clients/online", tc.body, tc.status, tc.field)
			if !strings.Contains(p.Detail, tc.detail) {
				t.Fatalf("detail %q, want it to say %q", p.Detail, tc.detail)
			}
			// The client is told what is wrong with its JSON, not how
			// the server's Go types are named.
			if strings.Contains(p.Detail, "Go ") || strings.Contains(p.Detail, "api.") {
				t.Fatalf("detail %q names server internals", p.Detail)
			}
		})
	}
	h.t = t
	h.expectProblem(http.MethodGet, "/clients/online", "", http.StatusMethodNotAllowed, "")
}

// TestOnlineBatchStopsDecodingAtTheLimit: a body of a million empty ids is
// refused after MaxBatchClientIDs+1 of them, without building the rest.
func TestOnlineBatchStopsDecodingAtTheLimit(t *testing.T) {
	body := []byte(`{"clientIds":[` + strings.Repeat(`"",`, 1<<20) + `""]}`)
	var req onlineBatchRequest
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := json.Unmarshal(body, &req)
	runtime.ReadMemStats(&after)
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated > 8<<20 {
		t.Fatalf("decoding allocated %d MiB for a %d MiB body it refuses", allocated>>20, len(body)>>20)
	}
	if fe, ok := errors.AsType[*presence.Error](err); !ok || fe.Field != "clientIds" {
		t.Fatalf("decoding %d ids: %v, want a clientIds problem", 1<<20+1, err)
	}
}
