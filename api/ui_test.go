package api

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// TestUIServesTheDashboard: /ui/ and its files load without a token even
// when tokens are configured (the data calls are what need one), with a
// same-origin CSP, their content types and an ETag that answers 304; /ui
// redirects to /ui/ and other names under /ui/ are 404.
func TestUIServesTheDashboard(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.ReadTokens = []string{"r1"} })
	for _, tc := range []struct{ path, contentType, contains string }{
		{"/ui/", "text/html; charset=utf-8", `<script src="app.js"`},
		{"/ui/app.js", "text/javascript; charset=utf-8", "SSEParser"},
		{"/ui/app.css", "text/css; charset=utf-8", "[hidden]"},
	} {
		r := h.do(http.MethodGet, tc.path, "")
		if r.status != http.StatusOK || r.header.Get("Content-Type") != tc.contentType || !bytes.Contains(r.body, []byte(tc.contains)) {
			t.Fatalf("GET %s: %d %q, want 200 %q with %q", tc.path, r.status, r.header.Get("Content-Type"), tc.contentType, tc.contains)
		}
		if csp := r.header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'self';") {
			t.Errorf("GET %s: Content-Security-Policy %q", tc.path, csp)
		}
		if r.header.Get("X-Content-Type-Options") != "nosniff" || r.header.Get("Cache-Control") != "no-cache" {
			t.Errorf("GET %s: headers %v", tc.path, r.header)
		}
		etag := r.header.Get("ETag")
		if len(etag) < 10 {
			t.Fatalf("GET %s: ETag %q", tc.path, etag)
		}
		if again := h.do(http.MethodGet, tc.path, "", "If-None-Match", etag); again.status != http.StatusNotModified || len(again.body) != 0 {
			t.Errorf("GET %s with If-None-Match: %d (%d bytes), want 304", tc.path, again.status, len(again.body))
		}
	}
	if a, b := h.do(http.MethodGet, "/ui/app.js", ""), h.do(http.MethodGet, "/ui/app.css", ""); a.header.Get("ETag") == b.header.Get("ETag") {
		t.Error("two files share an ETag")
	}

	r := h.do(http.MethodGet, "/ui?x=1", "")
	if r.status != http.StatusMovedPermanently || r.header.Get("Location") != "ui/?x=1" {
		t.Fatalf("GET /ui: %d Location %q, want 301 to ui/?x=1", r.status, r.header.Get("Location"))
	}
	if p := h.expectProblem(http.MethodGet, "/ui/index.htm", "", http.StatusNotFound, ""); p.Status != http.StatusNotFound {
		t.Fatalf("unknown dashboard file: %+v", p)
	}
	// The page's data still needs the token.
	h.expectProblem(http.MethodGet, "/stats", "", http.StatusUnauthorized, "")
}
