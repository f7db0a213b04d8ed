package test

import (
	"crypto/hmac"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/presenced/presenced/consumer/webhook"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// hookReceiver is a real HTTP receiver that checks every signature and
// keeps the changes it took, each once.
type hookReceiver struct {
	t      *testing.T
	secret []byte
	srv    *httptest.Server

	mu      sync.Mutex
	seen    map[string]bool
	changes []webhook.Change
}

func newHookReceiver(t *testing.T, secret string) *hookReceiver {
	r := &hookReceiver{t: t, secret: []byte(secret), seen: map[string]bool{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		ts, _ := strconv.ParseInt(req.Header.Get(webhook.HeaderTimestamp), 10, 64)
		var d webhook.Delivery
		if !hmac.Equal([]byte(req.Header.Get(webhook.HeaderSignature)), []byte(webhook.Signature(r.secret, ts, body))) ||
			json.Unmarshal(body, &d) != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, c := range d.Changes {
			if !r.seen[c.ID] {
				r.seen[c.ID] = true
				r.changes = append(r.changes, c)
			}
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// wait waits until n distinct changes arrived and returns them.
func (r *hookReceiver) wait(n int, what string, logs *syncBuffer) []webhook.Change {
	r.t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		r.mu.Lock()
		got := append([]webhook.Change(nil), r.changes...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("receiver never saw %s: %+v\n%s", what, got, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWebhookHearsSilentBrokerUnknownThenBack: a broker frozen (SIGSTOP)
// past its lease makes its client "unknown" on a hook delivered by a
// separate api process, with the node as evidence; thawed (SIGCONT), its
// heartbeats resume and the hook hears the client online again; killed,
// the hook hears unknown, then offline (node_lost) after the grace.
func TestWebhookHearsSilentBrokerUnknownThenBack(t *testing.T) {
	const secret = "e2e-node-hook-secret"
	secretFile := filepath.Join(t.TempDir(), "hook-secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	recv := newHookReceiver(t, secret)
	dbURL := pgtest.URL(t)
	broker := &proc{t: t, MQTTAddr: freeAddr(t), HTTPAddr: freeAddr(t), DBURL: dbURL, Node: "node-frozen", DataDir: t.TempDir(),
		Args: []string{"--node-lease", "2s", "--heartbeat-every", "500ms", "--node-grace", "10s"}}
	broker.start()
	watcher := &proc{t: t, Command: "api", HTTPAddr: freeAddr(t), DBURL: dbURL, DataDir: t.TempDir(),
		Args: []string{"--node-grace", "10s", "--lease-check-every", "100ms",
			"--webhook-url", "ops=" + recv.srv.URL + "/presence", "--webhook-secret-file", "ops=" + secretFile,
			"--webhook-poll-interval", "50ms", "--webhook-retry-max", "200ms"}}
	watcher.start()
	waitMetric(t, watcher, `presenced_webhook_leader{hook="ops"} 1`)

	const id = "GID_hook@@@frozen-1"
	pahoConnect(t, broker.MQTTAddr, id, 60*time.Second)
	if got := recv.wait(1, "the client online", watcher.logs); got[0].State != "online" || got[0].ClientID != id {
		t.Fatalf("first change %+v, want %s online", got[0], id)
	}

	if err := broker.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	got := recv.wait(2, "the client unknown", watcher.logs)
	if err := broker.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if c := got[1]; c.State != "unknown" || c.Online || c.Node != broker.Node || c.SilentSince == 0 || c.Cause != webhook.CauseNodeSilent {
		t.Fatalf("change after SIGSTOP %+v, want unknown on %s with silentSince", c, broker.Node)
	}
	got = recv.wait(3, "the client online again", watcher.logs)
	if c := got[2]; c.State != "online" || !c.Online || c.Cause != webhook.CauseNodeBack || c.SilentSince != got[1].SilentSince {
		t.Fatalf("change after SIGCONT %+v, want online again (node_back, the same spell)", c)
	}

	broker.kill()
	got = recv.wait(5, "unknown, then offline after the grace", watcher.logs)
	if got[3].State != "unknown" || got[4].State != "offline" || got[4].Reason != "node_lost" || got[4].ClientID != id {
		t.Fatalf("changes after SIGKILL %+v, want unknown then offline (node_lost)", got[3:])
	}
	for i := 1; i < len(got); i++ {
		if got[i].Seq <= got[i-1].Seq {
			t.Fatalf("out of order: %+v", got)
		}
	}
}
