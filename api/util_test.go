package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/presenced/presenced/presence"
)

// status GETs the online status of clientID (escaped into the path).
func (h *harness) status(clientID string) presence.Status {
	h.t.Helper()
	var st presence.Status
	h.getJSON("/clients/"+url.PathEscape(clientID)+"/online", http.StatusOK, &st)
	return st
}

func mustDecode(t *testing.T, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
}
