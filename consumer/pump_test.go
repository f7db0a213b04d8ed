package consumer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/presenced/presenced/consumer"
	"github.com/presenced/presenced/consumer/outbox"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// outboxLog adapts the outbox to the pump's Source, as cmd/presenced does;
// dropAcks simulates a process that dies after committing a batch but
// before acknowledging it.
type outboxLog struct {
	box      *outbox.Outbox
	dropAcks bool
}

func (l outboxLog) Read(ctx context.Context, max int) ([]consumer.Entry, error) {
	records, err := l.box.Read(ctx, max)
	entries := make([]consumer.Entry, len(records))
	for i, r := range records {
		entries[i] = consumer.Entry{Seq: r.Seq, Node: r.Kind == outbox.KindNode, Payload: r.Payload}
	}
	return entries, err
}

func (l outboxLog) Ack(upTo uint64) error {
	if l.dropAcks {
		return nil
	}
	return l.box.Ack(upTo)
}

func newPump(store *pgstore.Store, log consumer.Source) *consumer.Pump {
	apply := func(ctx context.Context, events []presence.Event) ([]presence.StoredEvent, error) {
		r, err := store.Apply(ctx, events)
		return r.Applied, err
	}
	return &consumer.Pump{
		Source:  log,
		Applier: consumer.NewApplier(apply, nil, nil, nil),
		Nodes:   consumer.NewNodeApplier(store.ApplyNodeEvent, nil, nil),
		Reject:  store.RejectEvent,
	}
}

// appendChurn appends connect and tcpclean of n channels of clients named
// prefix-i.
func appendChurn(t *testing.T, box *outbox.Outbox, prefix string, n int) {
	t.Helper()
	for i := range n {
		for _, typ := range []presence.EventType{presence.EventConnect, presence.EventTCPClean} {
			e := presence.Event{ClientID: fmt.Sprintf("%s-%d", prefix, i), ChannelID: fmt.Sprintf("%s-ch-%d", prefix, i),
				Type: typ, Time: time.Now().UnixMilli(), ClientIP: "127.0.0.1:1"}
			if typ == presence.EventTCPClean {
				e.Reason = presence.ReasonClientClosed
			}
			if err := box.Append(context.Background(), e); err != nil {
				t.Fatalf("append: %v", err)
			}
		}
	}
}

// drain runs the pump until it has applied everything in the log.
func drain(t *testing.T, pump *consumer.Pump) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pump.Drain()
	if err := pump.Run(ctx); err != nil {
		t.Fatalf("pump: %v", err)
	}
}

func countEvents(t *testing.T, store *pgstore.Store, prefix string) int64 {
	t.Helper()
	n, err := store.CountEvents(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPumpAppliesTheLogAndParksWhatIsNotAnEvent(t *testing.T) {
	store := pgtest.NewStore(t)
	box, err := outbox.Open(t.TempDir(), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	appendChurn(t, box, "pump", 100)
	// A record no consumer can apply (an empty client id): it must be
	// parked, and must not hold back the events behind it.
	if err := box.Append(context.Background(), presence.Event{ChannelID: "bad", Type: presence.EventConnect}); err != nil {
		t.Fatal(err)
	}
	appendChurn(t, box, "after", 10)

	pump := newPump(store, outboxLog{box: box})
	drain(t, pump)
	if got := countEvents(t, store, "pump-"); got != 200 {
		t.Fatalf("%d events stored, want 200", got)
	}
	if got := countEvents(t, store, "after-"); got != 20 {
		t.Fatalf("%d events after the bad record stored, want 20", got)
	}
	rejected, err := store.RejectedEvents(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(rejected) != 1 {
		t.Fatalf("%d records parked, want the one bad record", len(rejected))
	}
	if s := box.Stats(); s.BacklogRecords != 0 {
		t.Fatalf("outbox backlog %d after the drain, want every record acknowledged", s.BacklogRecords)
	}
}

func TestPumpReplaysWhatWasNotAcknowledgedAfterACrash(t *testing.T) {
	db := pgtest.NewStore(t)
	dir := t.TempDir()
	box, err := outbox.Open(dir, outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	appendChurn(t, box, "crash", 150)
	// The first process commits every batch and dies before any
	// acknowledgement reaches the outbox.
	drain(t, newPump(db, outboxLog{box: box, dropAcks: true}))
	if err := box.Close(); err != nil {
		t.Fatal(err)
	}
	if got := countEvents(t, db, "crash-"); got != 300 {
		t.Fatalf("%d events stored by the first run, want 300", got)
	}

	box, err = outbox.Open(dir, outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	if s := box.Stats(); s.BacklogRecords != 300 {
		t.Fatalf("reopened outbox holds %d records to apply, want all 300", s.BacklogRecords)
	}
	pump := newPump(db, outboxLog{box: box})
	drain(t, pump)
	if got := countEvents(t, db, "crash-"); got != 300 {
		t.Fatalf("%d events stored after the replay, want still 300", got)
	}
	if d := pump.Applier.Stats.Duplicates.Load(); d != 300 {
		t.Fatalf("replay counted %d duplicates, want 300 (the store absorbs them)", d)
	}
	if s := box.Stats(); s.BacklogRecords != 0 {
		t.Fatalf("backlog %d after the replay, want 0", s.BacklogRecords)
	}
}

func TestPumpStopsAtOnceWhenCancelledLeavingTheRestInTheLog(t *testing.T) {
	db := pgtest.NewStore(t)
	box, err := outbox.Open(t.TempDir(), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	appendChurn(t, box, "cancel", 5)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := newPump(db, outboxLog{box: box}).Run(ctx); err != context.Canceled {
		t.Fatalf("Run with an ended context returned %v, want context.Canceled", err)
	}
	if s := box.Stats(); s.BacklogRecords != 10 {
		t.Fatalf("backlog %d, want the 10 records still in the outbox", s.BacklogRecords)
	}
}

func TestPumpAcknowledgesAtMostEveryAckEveryAndOnDrain(t *testing.T) {
	db := pgtest.NewStore(t)
	box, err := outbox.Open(t.TempDir(), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	pump := newPump(db, outboxLog{box: box})
	pump.AckEvery = time.Hour // no acknowledgement falls due during the test
	done := make(chan error, 1)
	go func() { done <- pump.Run(context.Background()) }()
	for round := range 5 {
		appendChurn(t, box, fmt.Sprintf("ack%d", round), 10)
		waitUntil(t, func() bool { return countEvents(t, db, fmt.Sprintf("ack%d-", round)) == 20 })
	}
	if s := box.Stats(); s.Acks != 0 || s.BacklogRecords != 100 {
		t.Fatalf("while running: %d acknowledgements, backlog %d; want none yet and all 100 records kept", s.Acks, s.BacklogRecords)
	}
	pump.Drain()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s := box.Stats(); s.Acks != 1 || s.BacklogRecords != 0 {
		t.Fatalf("after the drain: %d acknowledgements, backlog %d; want one covering everything", s.Acks, s.BacklogRecords)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPumpWithConcurrentWritersStoresAndAcknowledgesEverything drains a
// log through four writers, with a node's stop report in the middle: every
// event is stored, every record acknowledged, and the report — applied
// only after every batch before it — closes exactly the channels its node
// opened before it.
func TestPumpWithConcurrentWritersStoresAndAcknowledgesEverything(t *testing.T) {
	db := pgtest.NewStore(t)
	box, err := outbox.Open(t.TempDir(), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	ctx := context.Background()
	appendConnects := func(node, prefix string, n int) {
		for i := range n {
			e := presence.Event{ClientID: fmt.Sprintf("%s-%d", prefix, i), ChannelID: fmt.Sprintf("%s-ch-%d", prefix, i),
				Type: presence.EventConnect, Time: time.Now().UnixMilli(), ClientIP: "127.0.0.1:1", Node: node, Epoch: "e1"}
			if err := box.Append(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := box.AppendNode(ctx, presence.NodeEvent{Node: "n1", Epoch: "e1", Type: presence.NodeStart, Time: time.Now().UnixMilli(), Seq: 1}); err != nil {
		t.Fatal(err)
	}
	appendChurn(t, box, "churn", 200)
	appendConnects("n1", "before", 300)
	if err := box.AppendNode(ctx, presence.NodeEvent{Node: "n1", Epoch: "e1", Type: presence.NodeStop, Time: time.Now().UnixMilli(), Seq: 2}); err != nil {
		t.Fatal(err)
	}
	appendConnects("n2", "after", 300)

	pump := newPump(db, outboxLog{box: box})
	pump.Writers, pump.BatchSize = 4, 25
	drain(t, pump)
	for prefix, want := range map[string]int64{"before-": 600, "churn-": 400, "after-": 300} {
		// before-: each connect and the tcpclean of the stop report.
		if got := countEvents(t, db, prefix); got != want {
			t.Fatalf("%d events of %s stored, want %d", got, prefix, want)
		}
	}
	if !hasOpenChannel(t, db, "after-7") {
		t.Fatal("a channel opened after the stop report was closed by it")
	}
	if s := box.Stats(); s.BacklogRecords != 0 {
		t.Fatalf("outbox backlog %d after the drain, want every record acknowledged", s.BacklogRecords)
	}
}

// hasOpenChannel reports whether the store lists an open channel of
// clientID (the rule: a connect without a tcpclean).
func hasOpenChannel(t *testing.T, db *pgstore.Store, clientID string) bool {
	t.Helper()
	channels, err := db.Channels(context.Background(), clientID, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range channels {
		if c.Open {
			return true
		}
	}
	return false
}

// TestPumpWithConcurrentWritersKeepsEachChannelInOrder: with batches in
// flight at once, a channel's events are still stored in the order the
// broker wrote them (ascending seqs: its history reads connect,
// disconnect, tcpclean), even when they sit in neighbouring batches.
func TestPumpWithConcurrentWritersKeepsEachChannelInOrder(t *testing.T) {
	db := pgtest.NewStore(t)
	box, err := outbox.Open(t.TempDir(), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	ctx := context.Background()
	const block, blocks = 25, 12
	for b := range blocks {
		for _, typ := range []presence.EventType{presence.EventConnect, presence.EventDisconnect, presence.EventTCPClean} {
			for i := range block {
				id := b*block + i
				e := presence.Event{ClientID: fmt.Sprintf("order-%d", id), ChannelID: fmt.Sprintf("order-ch-%d", id),
					Type: typ, Time: time.Now().UnixMilli(), ClientIP: "127.0.0.1:1", Node: "n1", Epoch: "e1"}
				if typ == presence.EventTCPClean {
					e.Reason = presence.ReasonClientDisconnect
				}
				if err := box.Append(ctx, e); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	pump := newPump(db, outboxLog{box: box})
	pump.Writers, pump.BatchSize = 4, block // each batch one event type of one block
	drain(t, pump)
	var disordered int
	if err := db.Pool().QueryRow(ctx, `SELECT count(*) FROM (
		SELECT channel_id, array_agg(event_type ORDER BY seq) AS types FROM events
		WHERE channel_id LIKE 'order-ch-%' GROUP BY channel_id) c
		WHERE types <> ARRAY['connect', 'disconnect', 'tcpclean']`).Scan(&disordered); err != nil {
		t.Fatal(err)
	}
	if n := countEvents(t, db, "order-"); n != 3*block*blocks || disordered != 0 {
		t.Fatalf("%d events stored (want %d), %d channels out of order", n, 3*block*blocks, disordered)
	}
}
