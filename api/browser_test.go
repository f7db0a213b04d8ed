package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestBrowserPagesOfOtherSitesAreRefused: a web page can make a browser
// on this machine send requests to the API: a cross-site POST of
// text/plain needs no CORS preflight, and a name rebound to 127.0.0.1
// (DNS rebinding) makes the page same-origin with the API. Neither may
// change presence; a client that is no browser is served as before.
func TestBrowserPagesOfOtherSitesAreRefused(t *testing.T) {
	// example.com is httptest's host, which the harness's own requests use.
	allowed := map[string]bool{"127.0.0.1": true, "::1": true, "example.com": true}
	h := newHarness(t, func(c *Config) { c.HostAllowed = func(host string) bool { return allowed[host] } })
	event := `{"clientId":"GID_x@@@victim","channelId":"forged","eventType":"connect","time":1000,"clientIp":"198.51.100.1:1","node":"fake"}`
	post := func(host string, header ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/events", strings.NewReader(event))
		req.Host = host
		req.Header.Set("Content-Type", "text/plain")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		rec := httptest.NewRecorder()
		h.srv.ServeHTTP(rec, req)
		return rec
	}
	for name, rec := range map[string]*httptest.ResponseRecorder{
		"rebound name":       post("rebind.evil.example:8080"),
		"cross-site fetch":   post("127.0.0.1:8080", "Origin", "http://evil.example", "Sec-Fetch-Site", "cross-site"),
		"cross-origin form":  post("127.0.0.1:8080", "Origin", "http://evil.example"),
		"IPv6, cross-origin": post("[::1]:8080", "Origin", "http://evil.example"),
	} {
		if rec.Code != http.StatusForbidden || rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s, want a 403 problem", name, rec.Code, rec.Body)
		}
	}
	if st := h.status("GID_x@@@victim"); st.Online || st.LastEventAt != nil {
		t.Fatalf("a refused request stored its event: %+v", st)
	}
	// The API's own page (same origin), and a client that is no browser.
	if rec := post("127.0.0.1:8080", "Origin", "http://127.0.0.1:8080", "Sec-Fetch-Site", "same-origin"); rec.Code != http.StatusOK {
		t.Fatalf("same-origin POST: %d %s", rec.Code, rec.Body)
	}
	if rec := post("[::1]:8080"); rec.Code != http.StatusOK {
		t.Fatalf("POST from a client that is no browser: %d %s", rec.Code, rec.Body)
	}
	if st := h.status("GID_x@@@victim"); !st.Online {
		t.Fatalf("the accepted POST was not stored: %+v", st)
	}
	// Reads by a page of another site are left to the browser's same-origin
	// policy (the API sends no CORS headers), but not for a rebound name.
	req := httptest.NewRequest(http.MethodGet, "/clients/GID_x@@@victim/online", nil)
	req.Host = "rebind.evil.example"
	rec := httptest.NewRecorder()
	h.srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("GET for a rebound name: %d %s", rec.Code, rec.Body)
	}
}
