package webhook_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/consumer/webhook"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// fault is what the receiver does with one request instead of taking it.
type fault int

const (
	fail fault = iota + 1 // answer 500
	slow                  // answer only after the sender gave up
)

// receiver is a real HTTP endpoint that verifies every delivery's
// signature, records it, and plays a script of faults.
type receiver struct {
	t      *testing.T
	secret []byte
	srv    *httptest.Server

	mu       sync.Mutex
	faults   []fault
	requests []webhook.Delivery // every request with a valid signature, taken or not
	badSigs  int
}

func newReceiver(t *testing.T, secret string) *receiver {
	r := &receiver{t: t, secret: []byte(secret)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	ts, err := strconv.ParseInt(req.Header.Get(webhook.HeaderTimestamp), 10, 64)
	want := webhook.Signature(r.secret, ts, body)
	var d webhook.Delivery
	if err != nil || !hmac.Equal([]byte(req.Header.Get(webhook.HeaderSignature)), []byte(want)) ||
		json.Unmarshal(body, &d) != nil || d.ID != req.Header.Get(webhook.HeaderDelivery) {
		r.mu.Lock()
		r.badSigs++
		r.mu.Unlock()
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	r.mu.Lock()
	r.requests = append(r.requests, d)
	var f fault
	if len(r.faults) > 0 {
		f, r.faults = r.faults[0], r.faults[1:]
	}
	r.mu.Unlock()
	switch f {
	case fail:
		http.Error(w, "down for maintenance", http.StatusInternalServerError)
	case slow:
		<-req.Context().Done() // the sender's timeout ends it
	}
}

func (r *receiver) addFaults(f ...fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults = append(r.faults, f...)
}

// unique returns the changes received, each once, in the order first seen.
func (r *receiver) unique() []webhook.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	var out []webhook.Change
	for _, d := range r.requests {
		for _, c := range d.Changes {
			if !seen[c.ID] {
				seen[c.ID] = true
				out = append(out, c)
			}
		}
	}
	return out
}

// waitChanges waits until n distinct changes arrived and returns them.
func (r *receiver) waitChanges(n int) []webhook.Change {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := r.unique()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("received %d distinct changes, want %d: %+v", len(got), n, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkDuplicates fails unless every delivery id names the same changes
// each time it arrived, and returns how many requests repeated one.
func (r *receiver) checkDuplicates() (repeats int) {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	first := map[string]webhook.Delivery{}
	for _, d := range r.requests {
		prev, ok := first[d.ID]
		if !ok {
			first[d.ID] = d
			continue
		}
		repeats++
		a, _ := json.Marshal(prev.Changes)
		b, _ := json.Marshal(d.Changes)
		if !bytes.Equal(a, b) {
			r.t.Errorf("delivery %s carried %s, then %s", d.ID, a, b)
		}
	}
	if r.badSigs > 0 {
		r.t.Errorf("%d requests without a valid signature", r.badSigs)
	}
	return repeats
}

const baseTime = int64(1_732_240_000_000)

func channelID(n int) string {
	return strconv.FormatInt(int64(0x1000_0000+n), 16) + "c0ffee00c0ffee00c0ffee00"
}

// apply stores one event (its own commit, so its own seq in order).
func apply(t *testing.T, s *pgstore.Store, client string, channel int, typ presence.EventType, at int64) {
	t.Helper()
	e := presence.Event{ClientID: client, ChannelID: channelID(channel), Type: typ, Time: baseTime + at,
		ClientIP: "203.0.113.7:52311", Node: "broker-a", Epoch: "e1"}
	if typ == presence.EventTCPClean {
		e.Reason = presence.ReasonClientClosed
	}
	if _, err := s.Apply(context.Background(), []presence.Event{e}); err != nil {
		t.Fatalf("apply %s %s: %v", client, typ, err)
	}
}

// running is a dispatcher running until stopped.
type running struct {
	d      *webhook.Dispatcher
	cancel context.CancelFunc
	done   chan struct{}
}

func start(t *testing.T, d *webhook.Dispatcher) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{d: d, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(r.done); _ = d.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

func (r *running) stop() { r.cancel(); <-r.done }

func newDispatcher(s *pgstore.Store, owner string, hooks ...*webhook.Hook) *webhook.Dispatcher {
	around := func(ctx context.Context, clientIDs []string, afterSeq, uptoSeq int64) ([]webhook.ChannelSeqs, error) {
		channels, err := s.ChannelsAround(ctx, clientIDs, afterSeq, uptoSeq)
		out := make([]webhook.ChannelSeqs, len(channels))
		for i, c := range channels {
			out[i] = webhook.ChannelSeqs(c)
		}
		return out, err
	}
	feed := func(ctx context.Context, afterSeq int64, limit int) (webhook.FeedBatch, error) {
		b, err := s.WebhookFeed(ctx, afterSeq, limit)
		nodes := make([]webhook.NodeChange, len(b.Nodes))
		for i, n := range b.Nodes {
			nodes[i] = webhook.NodeChange(n)
		}
		spells := make([]webhook.SilentSpell, len(b.Spells))
		for i, sp := range b.Spells {
			spells[i] = webhook.SilentSpell(sp)
		}
		return webhook.FeedBatch{Channels: b.Channels, Nodes: nodes, Spells: spells, UptoSeq: b.UptoSeq}, err
	}
	return &webhook.Dispatcher{Hooks: hooks, Changes: feed, Feed: s, Channels: around, Cursors: s,
		Owner: owner, Lease: 3 * time.Second, Poll: 20 * time.Millisecond}
}

func newHook(r *receiver, name string) *webhook.Hook {
	return &webhook.Hook{Name: name, URL: r.srv.URL + "/hook?token=query-token", Secret: r.secret,
		Timeout: 300 * time.Millisecond, Batch: 2, RetryMin: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
