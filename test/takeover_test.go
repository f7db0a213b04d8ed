package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// Many takeovers, with a dashboard's stream and a service's poller
// watching throughout: a client id that connects again is never offline,
// so the stream sends nothing for it, no GET answers offline, and since
// (when its online period began) never moves.
func TestTakeoversNeverShowOffline(t *testing.T) {
	p := startServe(t, pgtest.URL(t))
	runTakeovers(t, p.MQTTAddr, p, p.DBURL)
}

// The same through RocketMQ, where a takeover's two events travel in
// different queues (each channel has its own) and reach the store in
// either order.
func TestTakeoversNeverShowOfflineThroughRocketMQ(t *testing.T) {
	r := startRMQPath(t, pgtest.URL(t))
	runTakeovers(t, r.broker.MQTTAddr, r.api, r.dbURL)
}

func runTakeovers(t *testing.T, mqttAddr string, api *proc, dbURL string) {
	const (
		clients = 20
		rounds  = 10
	)
	prefix := "GID_takeover@@@" + fmt.Sprint(time.Now().UnixNano()) + "-"
	ids := make([]string, clients)
	for i := range ids {
		ids[i] = fmt.Sprintf("%sdev-%d", prefix, i)
		if _, code := rawConnect(t, mqttAddr, ids[i], 60); code != 0 {
			t.Fatalf("CONNACK %d for %s", code, ids[i])
		}
	}
	since := map[string]time.Time{}
	for _, id := range ids {
		api.waitOnline(id, true, 30*time.Second)
		since[id] = *api.status(id).Since
	}

	stream := openSSE(t, api, "/stream?prefix="+url.QueryEscape(prefix))
	if e := nextSSE(t, stream); e.Event != "ready" {
		t.Fatalf("first event %+v", e)
	}
	poller := startPoller(api.HTTPAddr, ids, since)

	for range rounds {
		for _, id := range ids {
			if _, code := rawConnect(t, mqttAddr, id, 60); code != 0 {
				t.Fatalf("CONNACK %d for %s", code, id)
			}
		}
	}
	// Every takeover stored, none still held for its successor.
	want := map[string]int{"connect": clients * (rounds + 1), "tcpclean": clients * rounds}
	waitEventCounts(t, dbURL, prefix, want, 60*time.Second)
	waitNoneHeld(t, dbURL, 30*time.Second)

	// A sentinel of the same prefix, connected after all of that was
	// stored: the stream sends changes in store order, so anything it had
	// for the takeovers comes before the sentinel's online.
	sentinel := prefix + "sentinel"
	if _, code := rawConnect(t, mqttAddr, sentinel, 60); code != 0 {
		t.Fatalf("CONNACK %d for the sentinel", code)
	}
	blipped := ""
	for e := nextSSE(t, stream); ; e = nextSSE(t, stream) {
		var c change
		if err := json.Unmarshal([]byte(e.Data), &c); err != nil {
			t.Fatalf("stream event %+v: %v", e, err)
		}
		if c.ClientID == sentinel {
			break
		}
		t.Errorf("the stream sent %s for %s during takeovers: %s", e.Event, c.ClientID, e.Data)
		if blipped == "" {
			blipped = c.ClientID
		}
	}
	if blipped != "" {
		logClientHistory(t, dbURL, blipped)
	}

	polls, bad := poller.stop()
	for _, b := range bad {
		t.Error(b)
	}
	if polls < clients {
		t.Fatalf("the poller answered only %d times", polls)
	}
	for _, id := range ids {
		st := api.status(id)
		if !st.Online || st.OpenChannels != 1 || !st.Since.Equal(since[id]) {
			t.Errorf("%s after %d takeovers: %+v, want online on one channel since %v", id, rounds, st, since[id])
		}
	}
	// An API process that starts now, and so never saw the takeovers,
	// answers the same since: it learns the period's start from the store.
	fresh := startAPIOnly(t, dbURL)
	for _, id := range ids {
		if st := fresh.status(id); !st.Online || st.Since == nil || !st.Since.Equal(since[id]) {
			t.Errorf("%s from an API process started after the takeovers: %+v (since %v), want online since %v", id, st, st.Since, since[id])
		}
	}
	t.Logf("%d takeovers; %d GETs during them, all online with since unchanged, also from a new API process", clients*rounds, polls)
}

// poller asks GET /clients/{id}/online for each id in turn until stopped,
// and keeps every answer that is not online since the given time.
type poller struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	polls  int
	bad    []string
}

func startPoller(addr string, ids []string, since map[string]time.Time) *poller {
	ctx, cancel := context.WithCancel(context.Background())
	p := &poller{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for i := 0; ctx.Err() == nil; i++ {
			id := ids[i%len(ids)]
			var st presence.Status
			code, err := getJSONErr(addr, "/clients/"+url.PathEscape(id)+"/online", &st)
			if ctx.Err() != nil {
				return
			}
			p.mu.Lock()
			p.polls++
			switch {
			case err != nil || code != http.StatusOK:
				p.bad = append(p.bad, fmt.Sprintf("GET %s: %d %v", id, code, err))
			case !st.Online || st.Since == nil || !st.Since.Equal(since[id]):
				p.bad = append(p.bad, fmt.Sprintf("GET %s answered %+v (since %v), want online since %v", id, st, st.Since, since[id]))
			}
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *poller) stop() (polls int, bad []string) {
	p.cancel()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.polls, p.bad
}

// waitNoneHeld waits until the store holds no takeover close for its
// successor.
func waitNoneHeld(t *testing.T, dbURL string, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	for {
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM takeovers_pending").Scan(&n); err != nil {
			t.Fatalf("count held takeovers: %v", err)
		}
		if n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d takeover closes still held after %v", n, timeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// logClientHistory logs a client's stored events in seq order, with the
// transaction that stored each, to tell how a blip came about.
func logClientHistory(t *testing.T, dbURL, clientID string) {
	t.Helper()
	t.Logf("stored events of %s (seq xmin channel type reason takeover_by applied_at):", clientID)
	for _, e := range storedEvents(t, dbURL, clientID) {
		t.Logf("  %d %s %.8s %s %s %.8s %s", e.Seq, e.Xmin, e.ChannelID, e.EventType, e.Reason, e.TakeoverBy, e.AppliedAt.Format("15:04:05.000000"))
	}
}
