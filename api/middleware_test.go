package api

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestUnknownRouteIsProblem(t *testing.T) {
	h := newHarness(t)
	p := h.expectProblem(http.MethodGet, "/nowhere", "", http.StatusNotFound, "")
	if p.Instance != "/nowhere" {
		t.Fatalf("problem %+v", p)
	}
	h.expectProblem(http.MethodDelete, "/clients/x/online", "", http.StatusMethodNotAllowed, "")
	h.expectProblem(http.MethodPut, "/stats", "", http.StatusMethodNotAllowed, "")
}

func TestTooManyInFlightIs429(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxInFlight = 1 })
	// The first request holds the only slot while its body trickles in.
	body, feed := io.Pipe()
	done := make(chan int)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, h.http.URL+"/events", body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	deadline := time.Now().Add(5 * time.Second)
	for len(h.srv.inFlight) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("first request never started")
		}
		time.Sleep(time.Millisecond)
	}
	r := h.do(http.MethodGet, "/clients/x/online", "")
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("status %d (Retry-After %q), want 429", r.status, r.header.Get("Retry-After"))
	}
	r.problem(t)
	_, _ = feed.Write([]byte(`{"clientId":"s","channelId":"s1","eventType":"connect","time":1,"clientIp":"1.2.3.4:5"}`))
	feed.Close()
	if code := <-done; code != http.StatusOK {
		t.Fatalf("held request: status %d", code)
	}
	if r := h.do(http.MethodGet, "/clients/x/online", ""); r.status != http.StatusOK {
		t.Fatalf("after the slot was freed: %d", r.status)
	}
}

func TestRequestTimeoutIs503(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.RequestTimeout = time.Nanosecond })
	p := h.expectProblem(http.MethodGet, "/clients/x/events", "", http.StatusServiceUnavailable, "")
	if !strings.Contains(p.Detail, "time") && !strings.Contains(p.Detail, "cancel") {
		t.Fatalf("detail %q", p.Detail)
	}
}

func TestDatabaseDownIs503(t *testing.T) {
	h := newHarness(t)
	h.store.Close()
	for _, target := range []string{"/clients/x/channels", "/clients/x/events", "/stats", "/readyz"} {
		h.expectProblem(http.MethodGet, target, "", http.StatusServiceUnavailable, "")
	}
	h.expectProblem(http.MethodPost, "/events", `{"clientId":"a","channelId":"c","eventType":"connect","time":1,"clientIp":"1.2.3.4:5"}`,
		http.StatusServiceUnavailable, "")
}

func TestRecovererAnswers500(t *testing.T) {
	h := newHarness(t)
	handler := h.srv.recoverer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/x", nil))
	r := response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
	if r.status != http.StatusInternalServerError || strings.Contains(string(r.body), "boom") {
		t.Fatalf("status %d body %s", r.status, r.body)
	}
	r.problem(t)
}

func TestMetricsUseRoutePatterns(t *testing.T) {
	h := newHarness(t)
	h.status("GID_m@@@secret-device")
	h.do(http.MethodGet, "/nowhere", "")
	r := h.do(http.MethodGet, "/metrics", "")
	if r.status != http.StatusOK {
		t.Fatalf("status %d", r.status)
	}
	text := string(r.body)
	for _, want := range []string{
		`presenced_http_request_duration_seconds_count{code="200",method="GET",route="/clients/{clientId}/online"} 1`,
		`presenced_http_request_duration_seconds_count{code="404",method="GET",route="unmatched"} 1`,
		`presenced_view_current 1`,
		`presenced_stream_subscribers 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(text, "secret-device") {
		t.Error("metrics carry a raw path")
	}
}

// TestMetricsBoundMethods: methods outside the standard set share the
// label "other", however many a client invents.
func TestMetricsBoundMethods(t *testing.T) {
	h := newHarness(t)
	for i := range 5 {
		h.do(fmt.Sprintf("BREW%d", i), "/clients/x/online", "")
	}
	h.do(http.MethodDelete, "/clients/x/online", "")
	text := string(h.do(http.MethodGet, "/metrics", "").body)
	for _, want := range []string{
		`presenced_http_request_duration_seconds_count{code="405",method="other",route="unmatched"} 5`,
		`presenced_http_request_duration_seconds_count{code="405",method="DELETE",route="unmatched"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(text, "BREW") {
		t.Error("metrics carry an invented method")
	}
}
