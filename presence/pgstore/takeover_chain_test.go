package pgstore_test

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// TestTakeoverChainNeverShowsOffline: a client's channel X is taken over
// by Y, and Y by Z, and the batch that closes Y (and opens Z) commits while
// the watermark is below it (a writer of another client is still open).
// The feed gives channel rows up to the watermark, so Y's row, changed by
// that batch, is left out; X's takeover close must then wait too (see
// holdBackTakeovers), or the view would see the client's last channel
// close with no successor and show it offline — as
// TestTakeoversNeverShowOffline caught now and then under load.
func TestTakeoverChainNeverShowsOffline(t *testing.T) {
	s := pgtest.NewStore(t)
	mustApply(t, s, ev("c", "X", presence.EventConnect, 1))
	view, asOf := loadedView(t, s)

	// B1: Y opens, X closes (taken over by Y). A read moves the
	// watermark past B1; its rows are not given to the view (another
	// read of the same feed, or the sample of this one, came first).
	mustApply(t, s, ev("c", "Y", presence.EventConnect, 2), takenOver(ev("c", "X", presence.EventTCPClean, 3), "Y"))
	// A writer of another client takes a seq and stays open: the
	// watermark cannot pass it.
	tx := holdWatermark(t, s, asOf, 4)
	// B2, committed: Z opens, Y closes (taken over by Z).
	mustApply(t, s, ev("c", "Z", presence.EventConnect, 5), takenOver(ev("c", "Y", presence.EventTCPClean, 6), "Z"))

	changes, err := s.ChangesSince(ctx, asOf, 100)
	if err != nil {
		t.Fatal(err)
	}
	apply := func(changes []presence.ChannelState) {
		t.Helper()
		for _, c := range view.Apply(changes) {
			if c.ClientID == "c" {
				t.Errorf("client c changed (online %v) while it was taken over from X to Y to Z: %+v", c.Online, c)
			}
		}
		if st, _ := view.Lookup("c"); !st.Online {
			t.Errorf("client c answered %+v during the takeovers", st)
		}
	}
	apply(changes)
	// The other writer commits: the close comes with the rest of the chain.
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	changes = readAfter(t, s, asOf, changes)
	apply(changes)
	st, _ := view.Lookup("c")
	if !st.Online || st.OpenChannels != 1 {
		t.Fatalf("client c after the takeovers: %+v (feed %+v), want online on Z", st, changes)
	}
}

// TestHoldBackKeepsOtherTakeoversWithTheirSuccessors: one read holds the
// takeover closes of two clients. B's successor changed again above the
// watermark, so B's close is held back; A's close comes before B's, and
// A's successors after it. Cut before B's close alone, the read would
// hand on A's close without its successors, and A would show offline.
func TestHoldBackKeepsOtherTakeoversWithTheirSuccessors(t *testing.T) {
	s := pgtest.NewStore(t)
	mustApply(t, s, ev("a", "A1", presence.EventConnect, 1), ev("b", "B1", presence.EventConnect, 1))
	view, asOf := loadedView(t, s)

	// A1 → A2, B1 → B2, A2 → A3, each batch committed: in seq order A1's
	// close, B1's close, A3's connect, A2's close.
	mustApply(t, s, ev("a", "A2", presence.EventConnect, 2), takenOver(ev("a", "A1", presence.EventTCPClean, 3), "A2"))
	mustApply(t, s, ev("b", "B2", presence.EventConnect, 4), takenOver(ev("b", "B1", presence.EventTCPClean, 5), "B2"))
	mustApply(t, s, ev("a", "A3", presence.EventConnect, 6), takenOver(ev("a", "A2", presence.EventTCPClean, 7), "A3"))
	// A read moves the watermark past all of that (its rows are another
	// reader's).
	// A writer of another client stays open, and B2 → B3 commits above
	// the watermark: B2's row leaves the next read.
	tx := holdWatermark(t, s, asOf, 8)
	mustApply(t, s, ev("b", "B3", presence.EventConnect, 9), takenOver(ev("b", "B2", presence.EventTCPClean, 10), "B3"))

	apply := func(changes []presence.ChannelState) {
		t.Helper()
		for _, c := range view.Apply(changes) {
			if c.ClientID == "other" {
				continue
			}
			t.Errorf("client %s changed (online %v) while it was taken over: %+v (read %+v)", c.ClientID, c.Online, c, changes)
		}
		for _, id := range []string{"a", "b"} {
			if st, _ := view.Lookup(id); !st.Online {
				t.Errorf("client %s answered %+v during the takeovers (read %+v)", id, st, changes)
			}
		}
	}
	changes, err := s.ChangesSince(ctx, asOf, 100)
	if err != nil {
		t.Fatal(err)
	}
	apply(changes)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	apply(readAfter(t, s, asOf, changes))
	for id, channel := range map[string]string{"a": "A3", "b": "B3"} {
		if open := view.OpenChannelsOf(id); len(open) != 1 || open[0].ChannelID != channel {
			t.Errorf("client %s after the takeovers: open %+v, want %s", id, open, channel)
		}
	}
}

// TestHoldBackAtAFullPage: a read that reaches its limit ends with a
// takeover close whose successor's row comes after the page. The close is
// held back for the next read, which starts at it and brings the
// successor along.
func TestHoldBackAtAFullPage(t *testing.T) {
	s := pgtest.NewStore(t)
	mustApply(t, s, ev("a", "A1", presence.EventConnect, 1))
	view, asOf := loadedView(t, s)
	// In seq order: o1's connect, A1's close, A3's connect, A2's close.
	mustApply(t, s, ev("other", "o1", presence.EventConnect, 2))
	mustApply(t, s, ev("a", "A2", presence.EventConnect, 3), takenOver(ev("a", "A1", presence.EventTCPClean, 4), "A2"))
	mustApply(t, s, ev("a", "A3", presence.EventConnect, 5), takenOver(ev("a", "A2", presence.EventTCPClean, 6), "A3"))

	cursor, reads := asOf, 0
	for ; reads < 10; reads++ {
		changes, err := s.ChangesSince(ctx, cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(changes) == 0 {
			break
		}
		for _, c := range view.Apply(changes) {
			if c.ClientID == "a" {
				t.Errorf("client a changed (online %v) while it was taken over: %+v (read %+v)", c.Online, c, changes)
			}
		}
		cursor = changes[len(changes)-1].Seq
	}
	if open := view.OpenChannelsOf("a"); len(open) != 1 || open[0].ChannelID != "A3" {
		t.Fatalf("client a after %d reads: open %+v, want A3", reads, open)
	}
}

// takenOver makes e a takeover's tcpclean, naming its successor by.
func takenOver(e presence.Event, by string) presence.Event {
	e.Reason, e.TakeoverBy = presence.ReasonTakeover, by
	return e
}

// loadedView returns a view loaded from a snapshot of s, and the seq the
// snapshot is as of.
func loadedView(t *testing.T, s *pgstore.Store) (*presence.View, int64) {
	t.Helper()
	states, asOf, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	view := presence.NewView(1000)
	view.Load(states, asOf)
	return view, asOf
}

// holdWatermark reads the feed after asOf, which moves the watermark past
// everything committed (the rows are another reader's), then leaves a
// writer of another client open with an event at time at: the watermark
// cannot pass it until the test commits or rolls back the transaction
// returned.
func holdWatermark(t *testing.T, s *pgstore.Store, asOf, at int64) pgx.Tx {
	t.Helper()
	if _, err := s.ChangesSince(ctx, asOf, 100); err != nil {
		t.Fatal(err)
	}
	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(ctx) })
	if _, err := s.BeginApply(ctx, tx, []presence.Event{ev("other", "o1", presence.EventConnect, at)}); err != nil {
		t.Fatal(err)
	}
	return tx
}

// readAfter reads the feed on from the last of the changes read before
// (from asOf when there were none).
func readAfter(t *testing.T, s *pgstore.Store, asOf int64, changes []presence.ChannelState) []presence.ChannelState {
	t.Helper()
	after := asOf
	if len(changes) > 0 {
		after = changes[len(changes)-1].Seq
	}
	next, err := s.ChangesSince(ctx, after, 100)
	if err != nil {
		t.Fatal(err)
	}
	return next
}
