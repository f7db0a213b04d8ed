package webhook_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/presenced/presenced/consumer/webhook"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// summary is a change as the tests compare it.
func summary(changes []webhook.Change) []string {
	out := make([]string, len(changes))
	for i, c := range changes {
		out[i] = fmt.Sprintf("%s %s %s", c.ClientID, c.State, c.ChannelID[:8])
	}
	return out
}

func checkAscending(t *testing.T, changes []webhook.Change) {
	t.Helper()
	for i := 1; i < len(changes); i++ {
		if changes[i].Seq <= changes[i-1].Seq {
			t.Fatalf("change %d (seq %d) arrived after seq %d: out of order", i, changes[i].Seq, changes[i-1].Seq)
		}
	}
}

// TestDeliversEveryChangeThroughFailures: a receiver that fails (500),
// is slow (beyond the timeout) and recovers gets every presence change,
// in order, signed; a retried batch carries the same delivery id and
// changes; a client's second channel, its DISCONNECT packet and the close
// of one of two channels change nothing.
func TestDeliversEveryChangeThroughFailures(t *testing.T) {
	s := pgtest.NewStore(t)
	recv := newReceiver(t, "s3cret-hmac-key")
	recv.addFaults(fail, fail, slow)
	hook := newHook(recv, "ops")
	var logs syncBuffer
	d := newDispatcher(s, "p1", hook)
	d.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	start(t, d)
	waitFor(t, "the lease", func() bool { return hook.Stats().Leader.Load() == 1 })

	for i := 1; i <= 4; i++ {
		apply(t, s, fmt.Sprintf("c%d", i), i, presence.EventConnect, int64(i))
	}
	apply(t, s, "c5", 5, presence.EventConnect, 5)
	apply(t, s, "c5", 6, presence.EventConnect, 6) // a second channel: still just online
	recv.waitChanges(5)

	recv.addFaults(fail, slow)
	apply(t, s, "c1", 1, presence.EventDisconnect, 10) // closes nothing
	for i := 1; i <= 4; i++ {
		apply(t, s, fmt.Sprintf("c%d", i), i, presence.EventTCPClean, int64(10+i))
	}
	apply(t, s, "c5", 5, presence.EventTCPClean, 20) // c5 stays online on channel 6
	apply(t, s, "c5", 6, presence.EventTCPClean, 21)
	got := recv.waitChanges(10)

	want := []string{"c1 online 10000001", "c2 online 10000002", "c3 online 10000003", "c4 online 10000004",
		"c5 online 10000005", "c1 offline 10000001", "c2 offline 10000002", "c3 offline 10000003",
		"c4 offline 10000004", "c5 offline 10000006"}
	if fmt.Sprint(summary(got)) != fmt.Sprint(want) {
		t.Fatalf("received\n%v\nwant\n%v", summary(got), want)
	}
	checkAscending(t, got)
	for _, c := range got {
		if c.ID != fmt.Sprintf("ops-%d", c.Seq) || c.Online != (c.State == "online") || c.Node != "broker-a" || c.ClientIP == "" || c.ConnectAt == 0 {
			t.Fatalf("change without its evidence: %+v", c)
		}
		if !c.Online && (c.TCPCleanAt == 0 || c.Reason != presence.ReasonClientClosed) {
			t.Fatalf("offline change without its tcpclean: %+v", c)
		}
	}
	if repeats := recv.checkDuplicates(); repeats < 5 {
		t.Fatalf("%d repeated deliveries, want at least 5 (one per fault)", repeats)
	}
	head, err := s.FeedHead(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the cursor at the head", func() bool { return hook.Stats().Cursor.Load() == head })
	if st := hook.Stats(); st.Delivered.Load() != 10 || st.Failed.Load() < 5 || st.LastSuccess.Load() == 0 || st.Lag() != 0 {
		t.Fatalf("stats: delivered %d, failed %d, last success %d, lag %d", st.Delivered.Load(), st.Failed.Load(), st.LastSuccess.Load(), st.Lag())
	}
	text := logs.String()
	if !strings.Contains(text, "delivery failed") || !strings.Contains(text, "kind=timeout") || !strings.Contains(text, "kind=status") {
		t.Fatalf("the failures were not logged:\n%s", text)
	}
	if strings.Contains(text, "s3cret") || strings.Contains(text, "query-token") {
		t.Fatalf("a secret reached the log:\n%s", text)
	}
}

// TestResumesFromTheCursorAfterRestart: changes made while no dispatcher
// runs are delivered by the next one, from the durable cursor, none lost
// and none that was delivered before repeated.
func TestResumesFromTheCursorAfterRestart(t *testing.T) {
	s := pgtest.NewStore(t)
	recv := newReceiver(t, "k")
	first := start(t, newDispatcher(s, "p1", newHook(recv, "ops")))
	// A hook seen for the first time starts at the head of the feed.
	waitFor(t, "the lease", func() bool { return first.d.Hooks[0].Stats().Leader.Load() == 1 })
	apply(t, s, "c1", 1, presence.EventConnect, 1)
	recv.waitChanges(1)
	head, _ := s.FeedHead(context.Background())
	waitFor(t, "the cursor at the head", func() bool { return first.d.Hooks[0].Stats().Cursor.Load() == head })
	first.stop()

	apply(t, s, "c2", 2, presence.EventConnect, 2)
	apply(t, s, "c1", 1, presence.EventTCPClean, 3)
	apply(t, s, "c3", 3, presence.EventConnect, 4)
	recv.addFaults(fail)
	start(t, newDispatcher(s, "p2", newHook(recv, "ops")))
	got := recv.waitChanges(4)
	want := []string{"c1 online 10000001", "c2 online 10000002", "c1 offline 10000001", "c3 online 10000003"}
	if fmt.Sprint(summary(got)) != fmt.Sprint(want) {
		t.Fatalf("received %v, want %v", summary(got), want)
	}
	checkAscending(t, got)
	recv.mu.Lock()
	firstAfterRestart := recv.requests[1].Changes[0].ClientID
	recv.mu.Unlock()
	if firstAfterRestart != "c2" {
		t.Fatalf("after the restart the first delivery began with %s, want c2 (c1's online was delivered before)", firstAfterRestart)
	}
}

// TestOneProcessAtATimeDeliversAHook: two dispatchers of the same hook
// never both deliver (no change arrives twice from a receiver that always
// takes it); when the one holding the lease stops, the other takes over
// from its cursor.
func TestOneProcessAtATimeDeliversAHook(t *testing.T) {
	s := pgtest.NewStore(t)
	recv := newReceiver(t, "k")
	a := start(t, newDispatcher(s, "pa", newHook(recv, "ops")))
	b := start(t, newDispatcher(s, "pb", newHook(recv, "ops")))
	leader := func() *running {
		switch {
		case a.d.Hooks[0].Stats().Leader.Load() == 1:
			return a
		case b.d.Hooks[0].Stats().Leader.Load() == 1:
			return b
		}
		return nil
	}
	waitFor(t, "a leader", func() bool { return leader() != nil })
	for i := 1; i <= 6; i++ {
		apply(t, s, fmt.Sprintf("c%d", i), i, presence.EventConnect, int64(i))
	}
	recv.waitChanges(6)
	if a.d.Hooks[0].Stats().Leader.Load()+b.d.Hooks[0].Stats().Leader.Load() != 1 {
		t.Fatal("both dispatchers hold the lease")
	}
	head, _ := s.FeedHead(context.Background())
	held := leader()
	waitFor(t, "the cursor at the head", func() bool { return held.d.Hooks[0].Stats().Cursor.Load() == head })
	held.stop()
	other := a
	if held == a {
		other = b
	}
	waitFor(t, "the other to take over", func() bool { return other.d.Hooks[0].Stats().Leader.Load() == 1 })
	for i := 1; i <= 3; i++ {
		apply(t, s, fmt.Sprintf("c%d", i), i, presence.EventTCPClean, int64(10+i))
	}
	got := recv.waitChanges(9)
	checkAscending(t, got)
	recv.mu.Lock()
	total := 0
	for _, d := range recv.requests {
		total += len(d.Changes)
	}
	recv.mu.Unlock()
	if total != len(got) {
		t.Fatalf("%d changes delivered for %d distinct: delivered twice", total, len(got))
	}
}

// syncBuffer is a log destination the dispatcher's goroutines share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestTakeoverIsNotOffline: a client that connects again (takeover) was
// never offline, whatever order the two events reach the store in: no
// change is sent for it.
func TestTakeoverIsNotOffline(t *testing.T) {
	s := pgtest.NewStore(t)
	recv := newReceiver(t, "k")
	hook := newHook(recv, "ops")
	start(t, newDispatcher(s, "p1", hook))
	waitFor(t, "the lease", func() bool { return hook.Stats().Leader.Load() == 1 })
	apply(t, s, "c1", 1, presence.EventConnect, 1)
	apply(t, s, "c2", 3, presence.EventConnect, 1)
	recv.waitChanges(2)

	takeover := func(client string, old, successor int, at int64) presence.Event {
		return presence.Event{ClientID: client, ChannelID: channelID(old), Type: presence.EventTCPClean, Time: baseTime + at,
			ClientIP: "203.0.113.7:52311", Node: "broker-a", Epoch: "e1", Reason: presence.ReasonTakeover, TakeoverBy: channelID(successor)}
	}
	connect := func(client string, channel int, at int64) presence.Event {
		return presence.Event{ClientID: client, ChannelID: channelID(channel), Type: presence.EventConnect, Time: baseTime + at,
			ClientIP: "203.0.113.8:40000", Node: "broker-a", Epoch: "e1"}
	}
	for _, batch := range [][]presence.Event{
		{takeover("c1", 1, 2, 10)}, {connect("c1", 2, 10)}, // the close first: held until its successor
		{connect("c2", 4, 10)}, {takeover("c2", 3, 4, 10)}, // the successor first
	} {
		if _, err := s.Apply(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	apply(t, s, "c9", 9, presence.EventConnect, 20) // a last change: the hook read the others before it
	got := recv.waitChanges(3)
	want := []string{"c1 online 10000001", "c2 online 10000003", "c9 online 10000009"}
	if fmt.Sprint(summary(got)) != fmt.Sprint(want) {
		t.Fatalf("received %v, want %v", summary(got), want)
	}
}
