package test

import (
	"bytes"
	"crypto/hmac"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/consumer/webhook"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// TestWebhookSeesOnlineThenOffline: presenced serve with a webhook POSTs
// a real MQTT client's presence changes, signed with the secret from its
// file, to a receiver that fails its first request: it gets the client
// online, then offline with the reason, the failed batch again under the
// same delivery id, and the secret is nowhere in the log.
func TestWebhookSeesOnlineThenOffline(t *testing.T) {
	const secret = "e2e-webhook-secret"
	secretFile := filepath.Join(t.TempDir(), "hook-secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		requests []webhook.Delivery
		failNext = 1
	)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ts, _ := strconv.ParseInt(r.Header.Get(webhook.HeaderTimestamp), 10, 64)
		var d webhook.Delivery
		if !hmac.Equal([]byte(r.Header.Get(webhook.HeaderSignature)), []byte(webhook.Signature([]byte(secret), ts, body))) ||
			json.Unmarshal(body, &d) != nil || d.ID != r.Header.Get(webhook.HeaderDelivery) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		requests = append(requests, d)
		if failNext > 0 {
			failNext--
			http.Error(w, "not yet", http.StatusServiceUnavailable)
		}
	}))
	defer receiver.Close()

	p := startServe(t, pgtest.URL(t), "--webhook-url", "ops="+receiver.URL+"/presence",
		"--webhook-secret-file", "ops="+secretFile, "--webhook-poll-interval", "50ms", "--webhook-retry-max", "200ms")
	// A new hook starts at the head of the feed once it holds its lease.
	waitMetric(t, p, `presenced_webhook_leader{hook="ops"} 1`)

	const id = "GID_hook@@@dev-1"
	client := pahoConnect(t, p.MQTTAddr, id, 30*time.Second)
	waitDeliveries := func(what string, done func([]webhook.Change) bool) []webhook.Change {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			var unique []webhook.Change
			seen := map[string]bool{}
			for _, d := range requests {
				for _, c := range d.Changes {
					if !seen[c.ID] {
						seen[c.ID] = true
						unique = append(unique, c)
					}
				}
			}
			mu.Unlock()
			if done(unique) {
				return unique
			}
			if time.Now().After(deadline) {
				t.Fatalf("receiver never saw %s: %+v\n%s", what, unique, p.logs)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	got := waitDeliveries("the client online", func(c []webhook.Change) bool { return len(c) >= 1 })
	if got[0].ClientID != id || got[0].State != "online" || len(got[0].ChannelID) != 32 || got[0].Node != p.Node || got[0].ClientIP == "" {
		t.Fatalf("first change %+v, want %s online on node %s", got[0], id, p.Node)
	}
	client.Disconnect(250)
	got = waitDeliveries("the client offline", func(c []webhook.Change) bool { return len(c) >= 2 })
	if len(got) != 2 || got[1].State != "offline" || got[1].ChannelID != got[0].ChannelID || got[1].Reason != "client_disconnect" || got[1].Seq <= got[0].Seq {
		t.Fatalf("changes %+v, want online then offline (client_disconnect) of one channel", got)
	}
	mu.Lock()
	if len(requests) < 3 || requests[0].ID != requests[1].ID {
		t.Errorf("the failed delivery was not retried under its id: %+v", requests)
	}
	mu.Unlock()
	waitMetric(t, p, `presenced_webhook_delivered_total{hook="ops"} 2`)
	waitMetric(t, p, `presenced_webhook_failed_attempts_total{hook="ops"} 1`)
	if strings.Contains(p.logs.String(), secret) {
		t.Fatal("the webhook secret is in the log")
	}
}

// waitMetric waits until /metrics has the line want.
func waitMetric(t *testing.T, p *proc, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var body []byte
	for {
		if resp, err := http.Get("http://" + p.HTTPAddr + "/metrics"); err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, line := range bytes.Split(body, []byte("\n")) {
				if string(line) == want {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in /metrics:\n%s", want, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
