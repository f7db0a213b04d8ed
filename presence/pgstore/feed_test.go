package pgstore_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

func TestSnapshotAndChangesSince(t *testing.T) {
	s := pgtest.NewStore(t)
	ctx := context.Background()
	mustApply(t, s, ev("a", "a1", presence.EventConnect, 100), ev("b", "b1", presence.EventConnect, 110))
	mustApply(t, s, ev("b", "b1", presence.EventTCPClean, 150), ev("b", "b2", presence.EventDisconnect, 170))

	states, asOf, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	open, last := map[string]bool{}, map[string]int64{}
	for _, st := range states {
		if st.Open {
			open[st.ChannelID] = true
		}
		last[st.ClientID] = max(last[st.ClientID], st.LastEventAt)
	}
	// b is offline: the snapshot holds online clients only (the view
	// asks the store for the others' last event time).
	if _, hasB := last["b"]; len(open) != 1 || !open["a1"] || hasB || last["a"] == 0 || asOf == 0 {
		t.Fatalf("snapshot: open %v, last %v, asOf %d", open, last, asOf)
	}
	times, err := s.LastEventTimes(ctx, []string{"b", "nobody", "a"})
	if err != nil || len(times) != 3 || times[0]-times[2] != 70 || times[1] != 0 {
		t.Fatalf("last event times %v, %v", times, err)
	}

	before := asOf
	mustApply(t, s, ev("a", "a1", presence.EventTCPClean, 300))
	mustApply(t, s, ev("c", "c1", presence.EventConnect, 400))
	changes, err := s.ChangesSince(ctx, before, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 2 || changes[0].ChannelID != "a1" || changes[0].Open || changes[0].TCPCleanAt-changes[0].ConnectAt != 200 ||
		changes[0].Reason == "" || changes[1].ChannelID != "c1" || !changes[1].Open || changes[0].Seq >= changes[1].Seq {
		t.Fatalf("changes since %d: %+v", before, changes)
	}
	if more, _ := s.ChangesSince(ctx, changes[1].Seq, 10); len(more) != 0 {
		t.Fatalf("changes after the last: %+v", more)
	}
}

// recordingSink is a FeedSink that keeps what it was told.
type recordingSink struct {
	mu      sync.Mutex
	loads   int
	lost    int
	view    *presence.View
	changed chan struct{}
}

func (r *recordingSink) Load(states []presence.ChannelState, asOf int64) {
	r.mu.Lock()
	r.loads++
	r.mu.Unlock()
	r.view.Load(states, asOf)
	r.signal()
}

func (r *recordingSink) Apply(states []presence.ChannelState) {
	r.view.Apply(states)
	r.signal()
}

func (r *recordingSink) Lost(error) {
	r.mu.Lock()
	r.lost++
	r.mu.Unlock()
	r.view.MarkStale()
}

func (r *recordingSink) SilentNodes(nodes map[string]time.Time) { r.view.SetSilentNodes(nodes) }

func (r *recordingSink) signal() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *recordingSink) counts() (loads, lost int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.loads, r.lost
}

// waitFor polls cond until it holds, or fails after 10s.
func waitFor(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

func TestFollowerTailsAndReloadsAfterLosingItsConnection(t *testing.T) {
	s := pgtest.NewStore(t)
	mustApply(t, s, ev("f", "f1", presence.EventConnect, 100))
	sink := &recordingSink{view: presence.NewView(100_000), changed: make(chan struct{}, 1)}
	// A poll interval far beyond the test: only notifications can wake it.
	f := s.NewFollower(sink, pgstore.FollowOptions{PollInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitFor(t, "initial load", sink.view.Current)
	if !viewStatus(sink.view, "f").Online {
		t.Fatal("snapshot missed an open channel")
	}

	mustApply(t, s, ev("f", "f1", presence.EventTCPClean, 200))
	d := waitFor(t, "tcpclean seen", func() bool { return !viewStatus(sink.view, "f").Online })
	t.Logf("notified change seen after %v", d)

	// Kill the follower's connection: it reports the loss, reconnects and
	// reloads; a change committed meanwhile is in the new snapshot.
	if _, err := s.Pool().Exec(context.Background(),
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'presenced-follower' AND datname = current_database()"); err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, ev("g", "g1", presence.EventConnect, 300))
	waitFor(t, "reload", func() bool { loads, lost := sink.counts(); return loads == 2 && lost == 1 && sink.view.Current() })
	if !viewStatus(sink.view, "g").Online || viewStatus(sink.view, "f").Online {
		t.Fatal("reloaded view is wrong")
	}
	if f.Cursor() < sink.view.Stats().Seq {
		t.Fatalf("cursor %d behind the view %d", f.Cursor(), sink.view.Stats().Seq)
	}
}

func viewStatus(v *presence.View, clientID string) presence.Status {
	st, _ := v.Lookup(clientID)
	return st
}

// A snapshot tells when each online client's current online period
// began, walking back over the channels that closed after a later one
// opened, as a view that followed the feed throughout kept it: the
// takeovers and overlapping connections of a period are no gap, a channel
// that closed before the next one connected is.
func TestSnapshotOnlineSinceWalksBackOverTakeoversAndOverlaps(t *testing.T) {
	s := pgtest.NewStore(t)
	takeover := func(client, channel, by string, at int64) presence.Event {
		e := withReason(ev(client, channel, presence.EventTCPClean, at), presence.ReasonTakeover)
		e.TakeoverBy = by
		return e
	}
	mustApply(t, s,
		// a chain of takeovers, the second close at the same ms as its successor's connect
		ev("take", "t1", presence.EventConnect, 100), ev("take", "t2", presence.EventConnect, 200),
		takeover("take", "t1", "t2", 201), ev("take", "t3", presence.EventConnect, 300),
		takeover("take", "t2", "t3", 300),
		// offline from 150 to 200
		ev("gap", "g1", presence.EventConnect, 100), ev("gap", "g1", presence.EventTCPClean, 150),
		ev("gap", "g2", presence.EventConnect, 200),
		// an older period, then one that an overlap carries
		ev("overlap", "o0", presence.EventConnect, 10), ev("overlap", "o0", presence.EventTCPClean, 50),
		ev("overlap", "o1", presence.EventConnect, 100), ev("overlap", "o2", presence.EventConnect, 150),
		ev("overlap", "o1", presence.EventTCPClean, 180),
		// n1 overlaps the open n3, and n2, which began before it, overlaps n1
		ev("nested", "n1", presence.EventConnect, 100), ev("nested", "n1", presence.EventTCPClean, 500),
		ev("nested", "n2", presence.EventConnect, 50), ev("nested", "n2", presence.EventTCPClean, 120),
		ev("nested", "n3", presence.EventConnect, 400),
		ev("plain", "p1", presence.EventConnect, 700),
		// offline now: not in the snapshot
		ev("left", "l1", presence.EventConnect, 100), ev("left", "l2", presence.EventConnect, 110),
		ev("left", "l1", presence.EventTCPClean, 120), ev("left", "l2", presence.EventTCPClean, 130),
	)
	states, _, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	since := map[string]int64{}
	for _, st := range states {
		if st.ChannelID == "" {
			since[st.ClientID] = st.OnlineSince - baseTime
		}
	}
	want := map[string]int64{"take": 100, "gap": 200, "overlap": 100, "nested": 50, "plain": 700}
	if len(since) != len(want) {
		t.Errorf("online clients in the snapshot: %v, want %v", since, want)
	}
	for client, at := range want {
		if since[client] != at {
			t.Errorf("%s: online since %d, want %d", client, since[client], at)
		}
	}

	// A view loaded from it answers those.
	view := presence.NewView(0)
	view.Load(states, 0)
	for client, at := range want {
		if st, _ := view.Lookup(client); !st.Online || st.Since == nil || st.Since.UnixMilli()-baseTime != at {
			t.Errorf("view: %s answered %+v, want online since %d", client, st, at)
		}
	}
}
