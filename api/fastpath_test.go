package api

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/presenced/presenced/presence"
)

func TestOnlineClientIDMatchesOnlyTheLookupRoute(t *testing.T) {
	for target, want := range map[string]string{
		"/clients/x/online":         "x",
		"/clients/a%2Fb/online":     "a%2Fb",
		"/clients/%E2%82%AC/online": "€",
		"/clients/online/online":    "online",
		"/clients/x/online?at=1":    "x",
		"/clients//online":          "",
		"/clients/a/b/online":       "",
		"/clients/x/online/":        "",
		"/clients/online":           "",
		"/clients/x/onlinex":        "",
		"/clientsx/online":          "",
		"/clients/x/channels":       "",
		"//clients/x/online":        "",
	} {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := onlineClientID(u)
		if got != want || ok != (want != "") {
			t.Errorf("%s: %q %v, want %q", target, got, ok, want)
		}
	}
}

// TestOnlineFastPathMatchesRouter: what ServeHTTP answers for the lookup
// route ahead of the router is byte for byte what the router's chain (its
// middlewares and handleOnline) answers, and both count in the same series
// of the request-duration histogram.
func TestOnlineFastPathMatchesRouter(t *testing.T) {
	long := strings.Repeat("x", presence.MaxClientIDBytes+1)
	targets := []string{
		"/clients/GID_f@@@on/online",
		"/clients/GID_f@@@off/online",
		"/clients/never-seen/online",
		"/clients/a%2Fb/online",
		"/clients/%E2%82%AC/online",
		"/clients/a+b/online",
		"/clients/a%01b/online",
		"/clients/" + long + "/online",
		"/clients//online",
		"/clients/GID_f@@@on/online?foo=1",
		"/clients/GID_f@@@on/online?at=",
		"/clients/GID_f@@@on/online?at=bad",
		"/clients/GID_f@@@on/online?at=1",
	}
	check := func(t *testing.T, h *harness, header ...string) {
		t.Helper()
		for _, target := range targets {
			fast := serveWith(h.srv.ServeHTTP, target, header...)
			routed := serveWith(h.srv.router.ServeHTTP, target, header...)
			if fast.status != routed.status || !bytes.Equal(fast.body, routed.body) {
				t.Errorf("%s: fast path %d %s, router %d %s", target, fast.status, fast.body, routed.status, routed.body)
			}
			for _, k := range []string{"Content-Type", "Content-Length", "Cache-Control", "Retry-After", "WWW-Authenticate"} {
				if fast.header.Get(k) != routed.header.Get(k) {
					t.Errorf("%s: %s %q on the fast path, %q through the router", target, k, fast.header.Get(k), routed.header.Get(k))
				}
			}
		}
	}

	h := newHarness(t)
	h.apply(ev("GID_f@@@on", "f1", presence.EventConnect, 1732240000123),
		ev("GID_f@@@off", "f2", presence.EventConnect, 1732240000123),
		ev("GID_f@@@off", "f2", presence.EventDisconnect, 1732240001123))
	check(t, h)
	before := lookupCount(t, h, "200")
	serveWith(h.srv.ServeHTTP, "/clients/GID_f@@@on/online")
	serveWith(h.srv.router.ServeHTTP, "/clients/GID_f@@@on/online")
	if got := lookupCount(t, h, "200"); got != before+2 {
		t.Fatalf("200 lookups counted %d, want 2", got-before)
	}
	if got := lookupCount(t, h, "400"); got == 0 || got%2 != 0 {
		t.Fatalf("400 lookups counted %d, want as many on either path", got)
	}
	checkInFlightGauge(t, h.srv)

	t.Run("tokens", func(t *testing.T) {
		h := newHarness(t, func(c *Config) {
			c.ReadTokens = []string{"reader"}
			c.IngestTokens = []string{"ingester"}
		})
		check(t, h)
		check(t, h, "Authorization", "Bearer nope")
		check(t, h, "Authorization", "Bearer ingester")
		check(t, h, "Authorization", "Bearer reader")
	})
	t.Run("in flight", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.MaxInFlight = 1 })
		h.srv.inFlight <- struct{}{}
		check(t, h)
		<-h.srv.inFlight
	})
}

// TestOnlineFastPathRecovers: a panic under the fast path is a 500 problem,
// and leaves neither the in-flight gauge nor an in-flight slot behind.
func TestOnlineFastPathRecovers(t *testing.T) {
	live := NewLive(10, 0)
	live.Load(nil, 0)
	s := New(Config{Logger: quiet}, Deps{Live: live, Clients: panickingDirectory{}})
	for _, serve := range []http.HandlerFunc{s.ServeHTTP, s.router.ServeHTTP} {
		r := serveWith(serve, "/clients/unheld/online")
		if r.status != http.StatusInternalServerError {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		r.problem(t)
	}
	checkInFlightGauge(t, s)
	if n := len(s.inFlight); n != 0 {
		t.Fatalf("%d in-flight slots held", n)
	}
}

type panickingDirectory struct{ ClientDirectory }

func (panickingDirectory) LastEventTimes(context.Context, []string) ([]int64, error) {
	panic("boom")
}

// checkInFlightGauge fails unless the in-flight gauge counts only the
// scrape that reads it.
func checkInFlightGauge(t *testing.T, s *Server) {
	t.Helper()
	body := serveWith(s.ServeHTTP, "/metrics").body
	if !bytes.Contains(body, []byte("\npresenced_http_requests_in_flight 1\n")) {
		t.Fatalf("in-flight gauge is not back to 0:\n%s", body)
	}
}

// lookupCount reads the count of the lookup route's series of code from
// /metrics.
func lookupCount(t *testing.T, h *harness, code string) int {
	t.Helper()
	prefix := `presenced_http_request_duration_seconds_count{code="` + code + `",method="GET",route="/clients/{clientId}/online"} `
	for line := range strings.Lines(string(h.do(http.MethodGet, "/metrics", "").body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), prefix); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	return 0
}

func serveWith(serve http.HandlerFunc, target string, header ...string) response {
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	serve(rec, req)
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}
