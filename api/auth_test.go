package api

import (
	"net/http"
	"strings"
	"testing"
)

func TestBearerTokens(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.ReadTokens = []string{"reader-1", " reader-2 "}
		c.IngestTokens = []string{"ingester"}
	})
	event := `{"clientId":"t","channelId":"t1","eventType":"connect","time":1,"clientIp":"1.2.3.4:5"}`
	tests := []struct {
		method, target, body, auth string
		status                     int
	}{
		{"GET", "/clients/t/online", "", "", http.StatusUnauthorized},
		{"GET", "/clients/t/online", "", "Bearer nope", http.StatusUnauthorized},
		{"GET", "/clients/t/online", "", "Basic cmVhZGVyLTE6", http.StatusUnauthorized},
		{"GET", "/clients/t/online", "", "Bearer reader-1", http.StatusOK},
		{"GET", "/clients/t/online", "", "bearer reader-2", http.StatusOK},
		{"GET", "/clients/t/online", "", "Bearer ingester", http.StatusForbidden},
		{"GET", "/stream", "", "", http.StatusUnauthorized},
		{"POST", "/events", event, "", http.StatusUnauthorized},
		{"POST", "/events", event, "Bearer reader-1", http.StatusForbidden},
		{"POST", "/events", event, "Bearer ingester", http.StatusOK},
		{"GET", "/healthz", "", "", http.StatusOK},
		{"GET", "/readyz", "", "", http.StatusOK},
		{"GET", "/metrics", "", "", http.StatusOK},
		{"GET", "/openapi.json", "", "", http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.target+" "+tc.auth, func(t *testing.T) {
			h.t = t
			var header []string
			if tc.auth != "" {
				header = []string{"Authorization", tc.auth}
			}
			r := h.do(tc.method, tc.target, tc.body, header...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			switch tc.status {
			case http.StatusUnauthorized:
				r.problem(t)
				if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
					t.Fatalf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
				}
			case http.StatusForbidden:
				r.problem(t)
				if !strings.Contains(r.header.Get("WWW-Authenticate"), "insufficient_scope") {
					t.Fatalf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
				}
			}
		})
	}
}

func TestOpenWithoutTokens(t *testing.T) {
	h := newHarness(t)
	if r := h.do("GET", "/clients/t/online", ""); r.status != http.StatusOK {
		t.Fatalf("status %d without tokens configured", r.status)
	}
}
