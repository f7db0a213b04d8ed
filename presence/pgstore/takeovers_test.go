package pgstore_test

import (
	"testing"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// takeoverClose is the tcpclean of channel old taken over by successor.
func takeoverClose(client, old, successor string, at int64) presence.Event {
	e := withReason(ev(client, old, presence.EventTCPClean, at), presence.ReasonTakeover)
	e.TakeoverBy = successor
	return e
}

// follower feeds a view from the store's change feed and records every
// change it reports, as an API process does.
type follower struct {
	t       *testing.T
	s       *pgstore.Store
	view    *presence.View
	seq     int64
	changes []presence.Change
}

func newFollower(t *testing.T, s *pgstore.Store) *follower {
	f := &follower{t: t, s: s, view: presence.NewView(100_000)}
	states, asOf, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.view.Load(states, asOf)
	f.seq = asOf
	return f
}

// catchUp reads the feed page by page (one change at a time, the worst
// case for transients) into the view.
func (f *follower) catchUp() {
	for {
		states, err := f.s.ChangesSince(ctx, f.seq, 1)
		if err != nil {
			f.t.Fatal(err)
		}
		if len(states) == 0 {
			return
		}
		f.changes = append(f.changes, f.view.Apply(states)...)
		f.seq = states[len(states)-1].Seq
	}
}

func TestTakeoverNeverShowsOffline(t *testing.T) {
	const c = presence.EventConnect
	// Channel ids chosen so that the old one sorts before and after its
	// successor: within a batch, order must not come from the ids.
	for _, ids := range [][2]string{{"a-old", "b-new"}, {"b-old", "a-new"}} {
		old, successor := ids[0], ids[1]
		orders := map[string][][]presence.Event{
			"successor first, separate batches": {{ev("cl", successor, c, 10)}, {takeoverClose("cl", old, successor, 11)}},
			"close first, separate batches":     {{takeoverClose("cl", old, successor, 11)}, {ev("cl", successor, c, 10)}},
			"one batch":                         {{takeoverClose("cl", old, successor, 11), ev("cl", successor, c, 10)}},
		}
		for name, batches := range orders {
			t.Run(old+"/"+name, func(t *testing.T) {
				s := pgtest.NewStore(t)
				mustApply(t, s, ev("cl", old, c, 0))
				f := newFollower(t, s)
				since := viewStatus(f.view, "cl").Since
				for _, batch := range batches {
					mustApply(t, s, batch...)
					f.catchUp()
					if st := mustOnline(t, s, "cl"); !st.Online {
						t.Fatalf("store answers offline after %v: %+v", batch, st)
					}
					if st := viewStatus(f.view, "cl"); !st.Online || !st.Since.Equal(*since) {
						t.Fatalf("view answers %+v after %v; want online since %v", st, batch, since)
					}
				}
				if len(f.changes) != 0 {
					t.Fatalf("the feed reported changes %+v; a takeover changes nothing", f.changes)
				}
				open := f.view.OpenChannelsOf("cl")
				if len(open) != 1 || open[0].ChannelID != successor {
					t.Fatalf("open channels %+v, want only %s", open, successor)
				}
				if n, err := s.HeldTakeovers(ctx); err != nil || n != 0 {
					t.Fatalf("held takeovers %d (%v), want 0", n, err)
				}
			})
		}
	}
}

func TestHeldTakeoverCountsAndRelease(t *testing.T) {
	s := pgtest.NewStore(t)
	const c = presence.EventConnect
	mustApply(t, s, ev("cl", "old", c, 0))
	res := mustApply(t, s, takeoverClose("cl", "old", "new", 10))
	if res.Held != 1 || len(res.Applied) != 0 || res.Duplicates != 0 {
		t.Fatalf("first delivery: %+v, want held 1", res)
	}
	// A redelivery while held is held once, not stored.
	if res := mustApply(t, s, takeoverClose("cl", "old", "new", 10)); len(res.Applied) != 0 {
		t.Fatalf("redelivery: %+v", res)
	}
	if n, _ := s.HeldTakeovers(ctx); n != 1 {
		t.Fatalf("held %d, want 1", n)
	}
	if st := mustOnline(t, s, "cl"); !st.Online || st.OpenChannels != 1 {
		t.Fatalf("while held: %+v, want online on the old channel", st)
	}

	// The successor's first event releases the close, after it in seq order.
	res = mustApply(t, s, ev("cl", "new", c, 9))
	if len(res.Applied) != 2 || res.Applied[0].ChannelID != "new" || res.Applied[1].ChannelID != "old" ||
		res.Applied[1].TakeoverBy != "new" || res.Applied[1].Reason != presence.ReasonTakeover || res.Applied[1].ClientID != "cl" {
		t.Fatalf("release: %+v", res.Applied)
	}
	if res.Duplicates != 0 {
		t.Fatalf("release counted %d duplicates", res.Duplicates)
	}
	history, err := s.History(ctx, presence.HistoryQuery{ClientID: "cl", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if last := history[len(history)-1]; last.ChannelID != "old" || last.TakeoverBy != "new" {
		t.Fatalf("history ends with %+v, want the old channel's takeover close naming new", last)
	}
	if st := s.TakeoverStats(); st.Held != 1 || st.Released != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestHeldTakeoverReleasedByTheSuccessorsClose(t *testing.T) {
	// The successor closed quickly and its connect is still on the way:
	// its tcpclean alone releases the old close, and the client is offline
	// — which it is.
	s := pgtest.NewStore(t)
	mustApply(t, s, ev("cl", "old", presence.EventConnect, 0))
	mustApply(t, s, takeoverClose("cl", "old", "new", 10))
	mustApply(t, s, ev("cl", "new", presence.EventTCPClean, 20))
	if st := mustOnline(t, s, "cl"); st.Online {
		t.Fatalf("%+v, want offline", st)
	}
	mustApply(t, s, ev("cl", "new", presence.EventConnect, 10))
	if st := mustOnline(t, s, "cl"); st.Online {
		t.Fatalf("%+v, want offline", st)
	}
}

func TestTakeoverChainReleasesInOrder(t *testing.T) {
	// a is taken over by b, b by c; the closes arrive before any connect.
	s := pgtest.NewStore(t)
	const c = presence.EventConnect
	mustApply(t, s, ev("cl", "a", c, 0))
	f := newFollower(t, s)
	mustApply(t, s, takeoverClose("cl", "b", "c", 20))
	mustApply(t, s, takeoverClose("cl", "a", "b", 10))
	mustApply(t, s, ev("cl", "b", c, 9)) // releases a's close, b's stays held
	f.catchUp()
	if open := f.view.OpenChannelsOf("cl"); len(open) != 1 || open[0].ChannelID != "b" {
		t.Fatalf("open %+v, want b", open)
	}
	mustApply(t, s, ev("cl", "c", c, 19))
	f.catchUp()
	if open := f.view.OpenChannelsOf("cl"); len(open) != 1 || open[0].ChannelID != "c" {
		t.Fatalf("open %+v, want c", open)
	}
	if len(f.changes) != 0 {
		t.Fatalf("changes %+v, want none", f.changes)
	}
}

func TestReleaseTakeoversByAge(t *testing.T) {
	// A successor that never comes: after the hold bound the close is
	// applied as it is.
	s := pgtest.NewStore(t)
	mustApply(t, s, ev("cl", "old", presence.EventConnect, 0))
	mustApply(t, s, takeoverClose("cl", "old", "never", 10))
	if released, err := s.ReleaseTakeovers(ctx, pgstore.MaxTakeoverHold); err != nil || len(released) != 0 {
		t.Fatalf("released %v (%v) before the bound", released, err)
	}
	released, err := s.ReleaseTakeovers(ctx, 0)
	if err != nil || len(released) != 1 || released[0].ChannelID != "old" || released[0].TakeoverBy != "never" {
		t.Fatalf("released %+v (%v)", released, err)
	}
	if st := mustOnline(t, s, "cl"); st.Online {
		t.Fatalf("%+v, want offline", st)
	}
	// The successor showing up late changes nothing more for old.
	if res := mustApply(t, s, ev("cl", "never", presence.EventConnect, 5)); len(res.Applied) != 1 {
		t.Fatalf("late successor: %+v", res.Applied)
	}
	if st := s.TakeoverStats(); st.ReleasedByAge != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestTakeoverChainWaitsForTheSuccessorsConnect: in a chain X → Y → Z,
// delivered out of order, Z's disconnect and Y's takeover close come
// before any connect of Y or Z. A successor's row alone (Z's, from its
// disconnect; Y's, from its close) must not release the close it
// succeeds: the store would then hold every channel of the client closed,
// offline, until Z's connect came.
func TestTakeoverChainWaitsForTheSuccessorsConnect(t *testing.T) {
	s := pgtest.NewStore(t)
	online := func(when string, open int) {
		t.Helper()
		st := mustOnline(t, s, "cl")
		if !st.Online || st.OpenChannels != open {
			t.Fatalf("%s: %+v, want online on %d channels", when, st, open)
		}
	}
	mustApply(t, s, ev("cl", "X", presence.EventConnect, 0))
	mustApply(t, s, ev("cl", "Z", presence.EventDisconnect, 30))
	mustApply(t, s, takeoverClose("cl", "Y", "Z", 20))
	mustApply(t, s, takeoverClose("cl", "X", "Y", 10))
	online("closes of X and Y stored before any successor connected", 1)
	mustApply(t, s, ev("cl", "Z", presence.EventConnect, 19))
	online("Z connected, Y not yet", 2)
	mustApply(t, s, ev("cl", "Y", presence.EventConnect, 9))
	online("every connect stored", 1)
	if st := s.TakeoverStats(); st.Held != 2 || st.Released != 2 {
		t.Fatalf("takeover stats %+v, want 2 held and 2 released", st)
	}
}
