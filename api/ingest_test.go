package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/presenced/presenced/presence"
)

func TestIngest(t *testing.T) {
	h := newHarness(t)
	one := `{"clientId":"GID_w@@@1","channelId":"w1","eventType":"connect","time":1000,"clientIp":"198.51.100.1:1"}`
	r := h.do(http.MethodPost, "/events", one)
	if r.status != http.StatusOK || string(r.body) != `{"received":1,"applied":1,"duplicates":0}`+"\n" {
		t.Fatalf("one event: %d %s", r.status, r.body)
	}
	// Read your writes: the answer comes once the view has the event.
	if st := h.status("GID_w@@@1"); !st.Online {
		t.Fatalf("after POST: %+v", st)
	}
	batch := `[` + one + `,{"clientId":"GID_w@@@1","channelId":"w1","eventType":"tcpclean","time":2000,"clientIp":"198.51.100.1:1","reason":"keepalive_timeout"}]`
	r = h.do(http.MethodPost, "/events", batch)
	if r.status != http.StatusOK || string(r.body) != `{"received":2,"applied":1,"duplicates":1}`+"\n" {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}
	if st := h.status("GID_w@@@1"); st.Online {
		t.Fatalf("after tcpclean: %+v", st)
	}
	// A redelivered webhook changes nothing.
	r = h.do(http.MethodPost, "/events", batch)
	if string(r.body) != `{"received":2,"applied":0,"duplicates":2}`+"\n" {
		t.Fatalf("redelivery: %s", r.body)
	}
}

func TestIngestRejectsInvalidBatchWhole(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxBodyBytes = 1 << 20 })
	batch := `[{"clientId":"ok","channelId":"v1","eventType":"connect","time":1000,"clientIp":"198.51.100.1:1"},
	           {"clientId":"bad+","channelId":"v2","eventType":"connected","time":0,"clientIp":"x"}]`
	p := h.expectProblem(http.MethodPost, "/events", batch, http.StatusBadRequest, "[1].clientId")
	fields := map[string]bool{}
	for _, fe := range p.Errors {
		fields[fe.Field] = true
	}
	for _, f := range []string{"[1].clientId", "[1].eventType", "[1].time", "[1].clientIp"} {
		if !fields[f] {
			t.Errorf("problem does not list %s: %+v", f, p.Errors)
		}
	}
	// Nothing partial: the valid first event was not stored.
	if events, _ := h.store.History(context.Background(), presence.HistoryQuery{ClientID: "ok"}); len(events) != 0 {
		t.Fatalf("stored %+v from a rejected batch", events)
	}

	h.expectProblem(http.MethodPost, "/events", ``, http.StatusBadRequest, "")
	h.expectProblem(http.MethodPost, "/events", `[]`, http.StatusBadRequest, "")
	h.expectProblem(http.MethodPost, "/events", `{"clientId":`, http.StatusBadRequest, "")
	h.expectProblem(http.MethodPost, "/events", `{"clientId":"a","channelId":"c","eventType":"connect","time":"soon","clientIp":"1.2.3.4:5"}`, http.StatusBadRequest, "")
	var many []string
	for i := range MaxEventsPerPost + 1 {
		many = append(many, fmt.Sprintf(`{"clientId":"m","channelId":"m%d","eventType":"connect","time":1,"clientIp":"1.2.3.4:5"}`, i))
	}
	p = h.expectProblem(http.MethodPost, "/events", "["+strings.Join(many, ",")+"]", http.StatusBadRequest, "")
	if !strings.Contains(p.Detail, "at most 1000") {
		t.Fatalf("detail %q", p.Detail)
	}
	big := `[` + strings.Repeat(`{"clientId":"m","channelId":"m","eventType":"connect","time":1,"clientIp":"1.2.3.4:5"},`, 20000) + `]`
	h.expectProblem(http.MethodPost, "/events", big, http.StatusRequestEntityTooLarge, "")
	h.expectProblem(http.MethodGet, "/events", "", http.StatusMethodNotAllowed, "")
}

// TestIngestCannotOverruleALiveBroker: a forged tcpclean for a live
// broker's channel (its id read from the open /clients/{id}/channels) and
// a forged connect on that broker's node are refused with 409 naming the
// node, and the client stays online.
func TestIngestCannotOverruleALiveBroker(t *testing.T) {
	h := newHarness(t)
	start := presence.NodeEvent{Node: "broker-a", Epoch: "e1", Type: presence.NodeStart, Time: 1, Seq: 1, LeaseMillis: 30_000}
	if _, err := h.store.ApplyNodeEvent(context.Background(), start); err != nil {
		t.Fatal(err)
	}
	connect := ev("GID_v@@@victim", "0123456789abcdef0123456789abcdef", presence.EventConnect, 1_732_240_000_000)
	connect.Node, connect.Epoch, connect.NodeSeq = "broker-a", "e1", 2
	h.apply(connect)

	for name, body := range map[string]string{
		"tcpclean naming the node": `{"clientId":"GID_v@@@victim","channelId":"0123456789abcdef0123456789abcdef","eventType":"tcpclean",
			"time":1732240001000,"clientIp":"198.51.100.1:1","node":"broker-a","epoch":"e1","reason":"client_closed"}`,
		"tcpclean naming no node": `{"clientId":"GID_v@@@victim","channelId":"0123456789abcdef0123456789abcdef","eventType":"tcpclean",
			"time":1732240001000,"clientIp":"198.51.100.1:1"}`,
		"connect on the node": `[{"clientId":"GID_v@@@other","channelId":"fine","eventType":"connect","time":1,"clientIp":"198.51.100.1:1"},
			{"clientId":"GID_v@@@ghost","channelId":"forged","eventType":"connect","time":1,"clientIp":"198.51.100.1:1","node":"broker-a","epoch":"e1","nodeSeq":9223372036854775807}]`,
	} {
		p := h.expectProblem(http.MethodPost, "/events", body, http.StatusConflict, "")
		if !strings.Contains(p.Detail, "broker-a") || len(p.Errors) != 1 || !strings.Contains(p.Errors[0].Message, "broker-a") {
			t.Errorf("%s: problem %+v does not name broker-a", name, p)
		}
	}
	if st := h.status("GID_v@@@victim"); !st.Online {
		t.Fatalf("victim after forged events: %+v, want online", st)
	}
	for _, client := range []string{"GID_v@@@ghost", "GID_v@@@other"} {
		if st := h.status(client); st.Online {
			t.Fatalf("%s online after a refused batch: %+v", client, st)
		}
	}
	r := h.do(http.MethodGet, "/metrics", "")
	if !strings.Contains(string(r.body), `presenced_http_ingested_events_total{result="refused"} 4`) {
		t.Errorf("refused events not counted:\n%s", r.body)
	}
}
