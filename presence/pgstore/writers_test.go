package pgstore_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// feedLog is a FeedSink that keeps every state it was handed, and the
// newest state of each channel.
type feedLog struct {
	mu      sync.Mutex
	loaded  bool
	asOf    int64
	applied []presence.ChannelState // every state of every Apply, in order
	latest  map[string]presence.ChannelState
}

func newFeedLog() *feedLog { return &feedLog{latest: map[string]presence.ChannelState{}} }

func (l *feedLog) Load(states []presence.ChannelState, asOf int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.loaded, l.asOf = true, asOf
	for _, s := range states {
		if s.ChannelID != "" {
			l.latest[s.ChannelID] = s
		}
	}
}

func (l *feedLog) Apply(states []presence.ChannelState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.applied = append(l.applied, states...)
	for _, s := range states {
		l.latest[s.ChannelID] = s
	}
}

func (l *feedLog) Lost(error)                       {}
func (l *feedLog) SilentNodes(map[string]time.Time) {}

func (l *feedLog) isLoaded() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.loaded
}

// seen returns the seqs of every state applied, in order.
func (l *feedLog) seen() []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	seqs := make([]int64, len(l.applied))
	for i, s := range l.applied {
		seqs[i] = s.Seq
	}
	return seqs
}

// follow runs a Follower of s into a new feedLog until the test ends and
// waits for its first load.
func follow(t *testing.T, s *pgstore.Store) (*feedLog, *pgstore.Follower) {
	return followPolling(t, s, 100*time.Millisecond)
}

// followPolling is follow with the follower's poll interval.
func followPolling(t *testing.T, s *pgstore.Store, poll time.Duration) (*feedLog, *pgstore.Follower) {
	t.Helper()
	sink := newFeedLog()
	f := s.NewFollower(sink, pgstore.FollowOptions{PollInterval: poll, BatchSize: 200,
		Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitFor(t, "initial load", sink.isLoaded)
	return sink, f
}

// storedChannel is a channel row as the feed presents it.
type storedChannel struct {
	seq  int64
	open bool
}

func storedChannels(t *testing.T, s *pgstore.Store) map[string]storedChannel {
	t.Helper()
	rows, err := s.Pool().Query(ctx, `SELECT channel_id, last_seq, has_connect AND NOT has_tcpclean FROM channels`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	channels := map[string]storedChannel{}
	for rows.Next() {
		var id string
		var c storedChannel
		if err := rows.Scan(&id, &c.seq, &c.open); err != nil {
			t.Fatal(err)
		}
		channels[id] = c
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return channels
}

// churnEvent is the one event of type typ of channel i of the churn: the
// same content whoever delivers it. Some channels close by a takeover of a
// later channel of the same client, whose close the store may hold.
func churnEvent(i int, typ presence.EventType) presence.Event {
	const clients = 40
	e := ev(fmt.Sprintf("client-%d", i%clients), fmt.Sprintf("ch-%04d", i), typ, int64(i*10))
	if typ == presence.EventTCPClean && i%50 == 0 {
		e.Reason, e.TakeoverBy = presence.ReasonTakeover, fmt.Sprintf("ch-%04d", i+clients)
	}
	return e
}

// TestConcurrentWritersKeepTheFeedExact applies interleaved random
// batches — the same events delivered by several writers at once, in any
// order — from four goroutines while a Follower follows. Every event is
// stored once and reported new once, the follower is handed each seq at
// most once and in order, and it ends with exactly the store's channels,
// each at its newest seq; reading the feed from 0 gives the same.
func TestConcurrentWritersKeepTheFeedExact(t *testing.T) {
	s := pgtest.NewStore(t)
	sink, f := follow(t, s)

	const writers, batches, perBatch, channels = 4, 40, 50, 400
	types := []presence.EventType{presence.EventConnect, presence.EventDisconnect, presence.EventTCPClean}
	var (
		wg         sync.WaitGroup
		mu         sync.Mutex
		newEvents  = map[presence.Key]int{} // how often each event was reported new
		errs       = make(chan error, writers)
		deliveries int
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 15))
			for range batches {
				batch := make([]presence.Event, perBatch)
				for i := range batch {
					batch[i] = churnEvent(r.IntN(channels), types[r.IntN(len(types))])
				}
				res, err := s.Apply(ctx, batch)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				deliveries += len(batch)
				for _, a := range res.Applied {
					newEvents[a.Key()]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Apply: %v", err)
	}
	t.Logf("%d deliveries, %d new events, %d transactions retried after a conflict, takeovers %+v",
		deliveries, len(newEvents), s.WriteConflicts(), s.TakeoverStats())

	// Every event stored once, and reported new by exactly one Apply.
	var stored, keys int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*), count(DISTINCT (channel_id, event_type)) FROM events`).Scan(&stored, &keys); err != nil {
		t.Fatal(err)
	}
	if stored != keys || stored != len(newEvents) {
		t.Fatalf("%d events stored, %d distinct keys, %d reported new", stored, keys, len(newEvents))
	}
	for k, n := range newEvents {
		if n != 1 {
			t.Fatalf("event %v reported new %d times", k, n)
		}
	}

	// No close is left held for a successor that is stored.
	var stuck int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM takeovers_pending p
		WHERE EXISTS (SELECT 1 FROM channels c WHERE c.channel_id = p.takeover_by)`).Scan(&stuck); err != nil || stuck != 0 {
		t.Fatalf("%d takeover closes held though their successor is stored (%v)", stuck, err)
	}

	want := storedChannels(t, s)
	var head int64
	for _, c := range want {
		head = max(head, c.seq)
	}
	waitFor(t, "follower reaches the head of the feed", func() bool { return f.Cursor() >= head })

	seqs := sink.seen()
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("follower handed seq %d after %d: a change repeated or out of order", seqs[i], seqs[i-1])
		}
	}
	sink.mu.Lock()
	got := sink.latest
	sink.mu.Unlock()
	if len(got) != len(want) {
		t.Fatalf("follower knows %d channels, the store has %d", len(got), len(want))
	}
	for id, c := range want {
		if g := got[id]; g.Seq != c.seq || g.Open != c.open {
			t.Fatalf("channel %s: follower has seq %d open %v, store seq %d open %v", id, g.Seq, g.Open, c.seq, c.open)
		}
	}

	// The feed read from the start in pages: every channel once, at its
	// newest seq.
	var after int64
	read := map[string]int64{}
	for {
		page, err := s.ChangesSince(ctx, after, 97)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range page {
			if _, again := read[st.ChannelID]; again || st.Seq <= after {
				t.Fatalf("ChangesSince repeated channel %s at seq %d (after %d)", st.ChannelID, st.Seq, after)
			}
			read[st.ChannelID] = st.Seq
			after = st.Seq
		}
		if len(page) == 0 { // a page may be cut short before a takeover close
			break
		}
	}
	for id, c := range want {
		if read[id] != c.seq {
			t.Fatalf("ChangesSince gave channel %s at seq %d, the store has %d", id, read[id], c.seq)
		}
	}
}

// TestAnOpenWriterHoldsTheWatermark keeps a writer's transaction open
// while another commits a later seq: neither ChangesSince nor the follower
// pass the open one's seq until it commits, and then the follower gets
// both changes, once each, in seq order.
func TestAnOpenWriterHoldsTheWatermark(t *testing.T) {
	s := pgtest.NewStore(t)
	sink, f := follow(t, s)

	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	slow, err := s.BeginApply(ctx, tx, []presence.Event{ev("slow", "slow-1", presence.EventConnect, 1)})
	if err != nil || len(slow) != 1 {
		t.Fatalf("open writer: %v, %v", slow, err)
	}
	fast := mustApply(t, s, ev("fast", "fast-1", presence.EventConnect, 2)).Applied
	if len(fast) != 1 || fast[0].Seq <= slow[0] {
		t.Fatalf("seqs: slow %v, fast %+v", slow, fast)
	}

	// The committed change is held back while the open one may still
	// commit a lower seq, however often the feed is read.
	for range 3 {
		changes, err := s.ChangesSince(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(changes) != 0 {
			t.Fatalf("ChangesSince passed an open writer's seq %d: %+v", slow[0], changes)
		}
	}
	if final, pending := s.Watermark(); final >= slow[0] || pending < fast[0].Seq {
		t.Fatalf("watermark %d (pending %d) with seq %d open", final, pending, slow[0])
	}
	if c := f.Cursor(); c >= slow[0] {
		t.Fatalf("follower cursor %d passed the open writer's seq %d", c, slow[0])
	}

	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both changes followed", func() bool { return f.Cursor() >= fast[0].Seq })
	if seqs := sink.seen(); len(seqs) != 2 || seqs[0] != slow[0] || seqs[1] != fast[0].Seq {
		t.Fatalf("follower saw seqs %v, want [%d %d]", seqs, slow[0], fast[0].Seq)
	}
}

// TestATakeoverHeldBesideItsSuccessorsWriterIsReleased stores a takeover's
// close while another writer, still open, stores its successor's connect:
// the close is held (its transaction cannot see the successor) and the
// successor's writer cannot see the held close to release it. Once both
// have committed the close is released all the same, and the old channel
// is closed.
func TestATakeoverHeldBesideItsSuccessorsWriterIsReleased(t *testing.T) {
	s := pgtest.NewStore(t)
	mustApply(t, s, ev("cl", "old", presence.EventConnect, 1))

	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := s.BeginApply(ctx, tx, []presence.Event{ev("cl", "new", presence.EventConnect, 2)}); err != nil {
		t.Fatal(err)
	}
	type result struct {
		res pgstore.ApplyResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := s.Apply(ctx, []presence.Event{takeoverClose("cl", "old", "new", 3)})
		done <- result{res, err}
	}()
	// The close is held, and its Apply waits (exclusive) for the open
	// writer before releasing what it held.
	waitFor(t, "the close held and its release waiting", func() bool {
		var held, waiting int
		err := s.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM takeovers_pending),
			(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted)`).Scan(&held, &waiting)
		return err == nil && held == 1 && waiting == 1
	})
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.res.Held != 1 || len(r.res.Applied) != 1 || r.res.Applied[0].ChannelID != "old" || r.res.Applied[0].Type != presence.EventTCPClean {
		t.Fatalf("Apply of the close: %+v", r.res)
	}
	var pending int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM takeovers_pending`).Scan(&pending); err != nil || pending != 0 {
		t.Fatalf("%d closes still held (%v)", pending, err)
	}
	if st := mustOnline(t, s, "cl"); !st.Online || st.OpenChannels != 1 {
		t.Fatalf("client after the takeover: %+v", st)
	}
}

// TestAChangeHeldBackByAForeignTransactionIsFollowedWhenItEnds: a change
// commits (and notifies) while another transaction with an id runs — one
// that stores no event and so notifies nobody when it ends, as a lease
// renewal or a cursor update. The feed holds the change back until that
// transaction ends; the follower must then see it without another
// notification and long before its poll interval (an hour here).
func TestAChangeHeldBackByAForeignTransactionIsFollowedWhenItEnds(t *testing.T) {
	s := pgtest.NewStore(t)
	_, f := followPolling(t, s, time.Hour)

	foreign, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer foreign.Rollback(ctx)
	if _, err := foreign.Exec(ctx, "SELECT pg_current_xact_id()"); err != nil {
		t.Fatal(err)
	}
	applied := mustApply(t, s, ev("held", "held-1", presence.EventConnect, 1)).Applied
	if len(applied) != 1 {
		t.Fatalf("applied %+v", applied)
	}
	// The notification of the commit came while the foreign transaction
	// ran: the follower read the feed and found nothing final.
	waitFor(t, "the feed read and held back", func() bool {
		final, pending := s.Watermark()
		return final < applied[0].Seq && pending >= applied[0].Seq
	})
	if c := f.Cursor(); c >= applied[0].Seq {
		t.Fatalf("follower cursor %d passed seq %d while a transaction below it ran", c, applied[0].Seq)
	}
	if err := foreign.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the held change followed without a notification", func() bool { return f.Cursor() >= applied[0].Seq })
}
