package test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// TestKickClosesTheConnection: DELETE /clients/{id}/connection with an
// admin token closes the client's connection in serve, which stores its
// tcpclean with reason api_disconnect; read tokens may not, a client that
// is not connected is 404, and an API process without a broker says 501.
func TestKickClosesTheConnection(t *testing.T) {
	dir := t.TempDir()
	adminFile := filepath.Join(dir, "admin-tokens")
	if err := os.WriteFile(adminFile, []byte("a1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dbURL := pgtest.URL(t)
	p := startServe(t, dbURL, "--api-read-tokens", "r1", "--api-admin-tokens-file", adminFile)
	conn, ack := rawConnect(t, p.MQTTAddr, "GID_kick@@@dev-1", 60)
	if ack != 0 {
		t.Fatalf("CONNACK %d", ack)
	}
	waitStoredEvents(t, dbURL, "GID_kick@@@dev-1", 1)

	path := "/clients/GID_kick@@@dev-1/connection?discardWill=true"
	if code, _ := p.send("DELETE", path, ""); code != http.StatusUnauthorized {
		t.Fatalf("without a token: %d, want 401", code)
	}
	if code, _ := p.send("DELETE", path, "", "Authorization", "Bearer r1"); code != http.StatusForbidden {
		t.Fatalf("with a read token: %d, want 403", code)
	}
	code, body := p.send("DELETE", path, "", "Authorization", "Bearer a1")
	var kicked struct {
		ClientID, ChannelID string
		DiscardedWill       bool
	}
	if err := json.Unmarshal(body, &kicked); code != http.StatusAccepted || err != nil || len(kicked.ChannelID) != 32 || !kicked.DiscardedWill {
		t.Fatalf("kick: %d %s", code, body)
	}
	waitClosed(t, conn, 10*time.Second)
	events := waitStoredEvents(t, dbURL, "GID_kick@@@dev-1", 2)
	if events[1].EventType != "tcpclean" || events[1].Reason != "api_disconnect" || events[1].ChannelID != kicked.ChannelID {
		t.Fatalf("stored %+v, want the kicked channel's tcpclean with reason api_disconnect", events)
	}

	code, body = p.send("DELETE", path, "", "Authorization", "Bearer a1")
	if code != http.StatusNotFound || !bytes.Contains(body, []byte("not connected")) {
		t.Fatalf("kick of a client no longer connected: %d %s", code, body)
	}
	apiOnly := startAPIOnly(t, dbURL, "--api-read-tokens", "r1", "--api-admin-tokens-file", adminFile)
	if code, body := apiOnly.send("DELETE", path, "", "Authorization", "Bearer a1"); code != http.StatusNotImplemented {
		t.Fatalf("kick through presenced api: %d %s, want 501", code, body)
	}
}
