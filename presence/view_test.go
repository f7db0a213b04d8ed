package presence

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func state(client, channel string, open bool, connectAt, seq int64) ChannelState {
	return ChannelState{ClientID: client, ChannelID: channel, Open: open, ConnectAt: connectAt, LastEventAt: connectAt, Seq: seq}
}

func TestViewTracksOpenChannelsAndChanges(t *testing.T) {
	v := NewView(100)
	changes := v.Apply([]ChannelState{state("a", "a1", true, 100, 1), state("b", "b1", true, 110, 2)})
	if len(changes) != 2 || !changes[0].Online || changes[1].ClientID != "b" {
		t.Fatalf("changes %+v, want a and b online", changes)
	}
	st := statusOf(v, "a")
	if !st.Online || st.State != StateOnline || st.OpenChannels != 1 || st.Since == nil || Millis(*st.Since) != 100 {
		t.Fatalf("status %+v", st)
	}
	// Takeover, new connect first: no change, since stays.
	if ch := v.Apply([]ChannelState{state("a", "a2", true, 200, 3)}); len(ch) != 0 {
		t.Fatalf("second channel produced changes %+v", ch)
	}
	if ch := v.Apply([]ChannelState{{ClientID: "a", ChannelID: "a1", Open: false, ConnectAt: 100, LastEventAt: 250, Seq: 4}}); len(ch) != 0 {
		t.Fatalf("closing one of two channels produced changes %+v", ch)
	}
	st = statusOf(v, "a")
	if !st.Online || st.OpenChannels != 1 || Millis(*st.Since) != 100 || Millis(*st.LastEventAt) != 250 {
		t.Fatalf("after takeover %+v, want online since 100 with last event 250", st)
	}
	ch := v.Apply([]ChannelState{{ClientID: "a", ChannelID: "a2", Open: false, ConnectAt: 200, LastEventAt: 300, Seq: 5}})
	if len(ch) != 1 || ch[0].Online {
		t.Fatalf("closing the last channel: %+v, want one offline change", ch)
	}
	if st := statusOf(v, "a"); st.Online || st.State != StateOffline || st.Since != nil || Millis(*st.LastEventAt) != 300 {
		t.Fatalf("offline status %+v", st)
	}
	if s := v.Stats(); s.OnlineClients != 1 || s.OpenChannels != 1 || s.HeldClients != 2 || s.Seq != 5 {
		t.Fatalf("stats %+v", s)
	}
}

func TestViewIsIdempotent(t *testing.T) {
	v := NewView(100)
	s := state("a", "a1", true, 100, 1)
	v.Apply([]ChannelState{s, s})
	v.Apply([]ChannelState{s})
	if st := statusOf(v, "a"); st.OpenChannels != 1 {
		t.Fatalf("open channels %d after a repeated state, want 1", st.OpenChannels)
	}
	closed := s
	closed.Open = false
	v.Apply([]ChannelState{closed, closed})
	if s := v.Stats(); s.OpenChannels != 0 || s.OnlineClients != 0 {
		t.Fatalf("stats %+v after a repeated close", s)
	}
}

func TestViewUnknownClientIsOffline(t *testing.T) {
	v := NewView(100)
	if st := statusOf(v, "nobody"); st.Online || st.State != StateOffline || st.LastEventAt != nil {
		t.Fatalf("unknown client %+v", st)
	}
	v.Apply([]ChannelState{state("c", "c1", false, 0, 1)}) // tcpclean before connect
	if st := statusOf(v, "c"); st.Online {
		t.Fatalf("a closed channel made the client online: %+v", st)
	}
}

func TestViewLoadReplacesAndReportsDifferences(t *testing.T) {
	v := NewView(100)
	if v.Current() {
		t.Fatal("an empty view is current")
	}
	// Two open channels of one client in any order: online since the earliest.
	first := v.Load([]ChannelState{
		state("a", "a2", true, 200, 5), state("a", "a1", true, 100, 3),
		state("b", "b1", true, 100, 4),
		{ClientID: "c", LastEventAt: 900, Seq: 9}, // a client with only closed channels
	}, 9)
	if len(first) != 0 || !v.Current() {
		t.Fatalf("first load: changes %+v, current %v", first, v.Current())
	}
	if st := statusOf(v, "a"); st.OpenChannels != 2 || Millis(*st.Since) != 100 {
		t.Fatalf("a after load: %+v", st)
	}
	if st := statusOf(v, "c"); st.Online || Millis(*st.LastEventAt) != 900 {
		t.Fatalf("c after load: %+v", st)
	}
	if s := v.Stats(); s.OnlineClients != 2 || s.OpenChannels != 3 || s.HeldClients != 3 || s.Seq != 9 {
		t.Fatalf("stats %+v", s)
	}
	v.MarkStale()
	if v.Current() {
		t.Fatal("stale view reports current")
	}
	// A reload where b went offline and c online meanwhile.
	changes := v.Load([]ChannelState{state("a", "a1", true, 100, 3), state("c", "c1", true, 950, 12), {ClientID: "b", LastEventAt: 990}}, 12)
	if len(changes) != 2 || changes[0].ClientID != "b" || changes[0].Online || changes[1].ClientID != "c" || !changes[1].Online || changes[1].Channel.Seq != 12 {
		t.Fatalf("reload changes %+v", changes)
	}
	if !v.Current() {
		t.Fatal("reloaded view not current")
	}
}

func TestViewListAndLookupMany(t *testing.T) {
	v := NewView(100)
	var states []ChannelState
	for i, id := range []string{"g1@@@c", "g1@@@a", "g2@@@a", "g1@@@b", "g1@@@d"} {
		states = append(states, state(id, "ch"+id, id != "g1@@@d", 100, int64(i+1)))
	}
	v.Apply(states)
	page, more := v.List(ListQuery{Prefix: "g1@@@", Limit: 2})
	if len(page) != 2 || !more || page[0].ClientID != "g1@@@a" || page[1].ClientID != "g1@@@b" {
		t.Fatalf("page 1: %+v more=%v", page, more)
	}
	page, more = v.List(ListQuery{Prefix: "g1@@@", After: "g1@@@b", Limit: 2})
	if len(page) != 1 || more || page[0].ClientID != "g1@@@c" {
		t.Fatalf("page 2: %+v more=%v", page, more)
	}
	if page, _ := v.List(ListQuery{Limit: 10}); len(page) != 4 || page[3].ClientID != "g2@@@a" {
		t.Fatalf("online, all prefixes: %+v", page) // g1@@@d is offline
	}
	st, unheld := v.LookupMany([]string{"g2@@@a", "nobody", "g2@@@a", "g1@@@d"})
	if len(st) != 4 || !st[0].Online || st[1].Online || st[1].ClientID != "nobody" || !st[2].Online || st[3].Online {
		t.Fatalf("LookupMany %+v", st)
	}
	if !slices.Equal(unheld, []int{1}) {
		t.Fatalf("unheld %v, want [1] (nobody)", unheld)
	}
	if s := v.PrefixStats("g1@@@"); s.OnlineClients != 3 || s.OpenChannels != 3 || s.HeldClients != 4 {
		t.Fatalf("prefix stats %+v", s)
	}
}

func TestViewAnswersUnknownForSilentNodes(t *testing.T) {
	v := NewView(100)
	a := state("a", "a1", true, 100, 1)
	a.Node = "n1"
	b1, b2 := state("b", "b1", true, 100, 2), state("b", "b2", true, 100, 3)
	b1.Node, b2.Node = "n1", "n2"
	v.Apply([]ChannelState{a, b1, b2})
	silentSince := time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)
	v.SetSilentNodes(map[string]time.Time{"n1": silentSince})
	if st := statusOf(v, "a"); st.State != StateUnknown || st.Online || st.Node != "n1" || st.Since == nil || !st.Since.Equal(silentSince) {
		t.Fatalf("client on a silent node: %+v", st)
	}
	if st := statusOf(v, "b"); st.State != StateOnline || st.Node != "" {
		t.Fatalf("client with a channel on a live node: %+v", st)
	}
	v.SetSilentNodes(nil)
	if st := statusOf(v, "a"); st.State != StateOnline || !st.Online {
		t.Fatalf("after the node came back: %+v", st)
	}
}

func statusOf(v *View, clientID string) Status {
	st, _ := v.Lookup(clientID)
	return st
}

// TestViewHoldsOnlineClientsAndABoundOfOffline churns many more offline
// clients through the view than it may hold: online ones all stay, the
// offline ones it holds stay within the bound, and every answer stays
// right — a client it dropped is offline and said to be unheld, so its
// last event time comes from the store; Remember brings it back.
func TestViewHoldsOnlineClientsAndABoundOfOffline(t *testing.T) {
	const bound = 100
	v := NewView(bound)
	var seq int64
	next := func() int64 { seq++; return seq }
	for i := range 50 {
		id := fmt.Sprintf("on-%d", i)
		v.Apply([]ChannelState{state(id, "ch-"+id, true, 1000, next())})
	}
	for i := range 10_000 {
		id := fmt.Sprintf("churn-%d", i)
		v.Apply([]ChannelState{state(id, "ch-"+id, true, 2000, next())})
		v.Apply([]ChannelState{state(id, "ch-"+id, false, 3000, next())})
		if s := v.Stats(); s.HeldClients-s.OnlineClients > bound {
			t.Fatalf("after %d churned: %+v holds more than %d offline", i+1, s, bound)
		}
	}
	s := v.Stats()
	if s.OnlineClients != 50 || s.OpenChannels != 50 || s.EvictedClients < 10_000-bound {
		t.Fatalf("stats %+v", s)
	}
	for i := range 50 {
		if st, held := v.Lookup(fmt.Sprintf("on-%d", i)); !held || !st.Online || Millis(*st.Since) != 1000 {
			t.Fatalf("online client %d: %+v held=%v", i, st, held)
		}
	}
	dropped := 0
	for i := range 10_000 {
		st, held := v.Lookup(fmt.Sprintf("churn-%d", i))
		if st.Online || st.OpenChannels != 0 {
			t.Fatalf("churn-%d answered %+v", i, st)
		}
		if held && Millis(*st.LastEventAt) != 3000 {
			t.Fatalf("held churn-%d has last event %v", i, st.LastEventAt)
		}
		if !held {
			dropped++
		}
	}
	if dropped < 10_000-bound {
		t.Fatalf("only %d dropped", dropped)
	}
	v.Remember("churn-0", 3000)
	if st, held := v.Lookup("churn-0"); !held || Millis(*st.LastEventAt) != 3000 {
		t.Fatalf("remembered: %+v held=%v", st, held)
	}
	// Remember never makes a held client older, and a client going online
	// again is held whatever the bound.
	v.Apply([]ChannelState{state("churn-0", "ch-churn-0b", true, 5000, next())})
	v.Remember("churn-0", 3000)
	if st, held := v.Lookup("churn-0"); !held || !st.Online || Millis(*st.LastEventAt) != 5000 {
		t.Fatalf("back online: %+v held=%v", st, held)
	}
	if s := v.Stats(); s.HeldClients-s.OnlineClients > bound {
		t.Fatalf("end: %+v", s)
	}
}

// TestViewTakeoverWithinABatchIsNoChange: the feed gives each channel's
// current state in the order of its newest event, so a batch can close a
// client's channel by takeover before its successor appears (here the
// first successor was itself taken over, and sorts last). The client was
// never offline: no change, and its online period goes on. A close that
// is not a takeover is a real gap.
func TestViewTakeoverWithinABatchIsNoChange(t *testing.T) {
	v := NewView(100)
	v.Apply([]ChannelState{state("a", "a1", true, 100, 1), state("b", "b1", true, 100, 2)})
	closed := func(client, channel string, reason Reason, seq int64) ChannelState {
		s := state(client, channel, false, 100, seq)
		s.Reason = reason
		return s
	}
	changes := v.Apply([]ChannelState{
		closed("a", "a1", ReasonTakeover, 5), // taken over by a2
		state("a", "a3", true, 300, 7),       // took a2 over
		closed("a", "a2", ReasonTakeover, 8), // a2: opened and closed since the last batch
		closed("b", "b1", ReasonClientClosed, 9),
		state("b", "b2", true, 400, 10),
	})
	if len(changes) != 2 || changes[0].ClientID != "b" || changes[0].Online || changes[1].ClientID != "b" || !changes[1].Online {
		t.Fatalf("changes %+v, want only b's offline and online", changes)
	}
	if st := statusOf(v, "a"); !st.Online || st.OpenChannels != 1 || Millis(*st.Since) != 100 {
		t.Fatalf("a: %+v, want online since 100", st)
	}
	if st := statusOf(v, "b"); !st.Online || Millis(*st.Since) != 400 {
		t.Fatalf("b: %+v, want online since 400", st)
	}
	// A takeover whose successor is not in the batch is offline for now.
	changes = v.Apply([]ChannelState{closed("a", "a3", ReasonTakeover, 11)})
	if len(changes) != 1 || changes[0].Online {
		t.Fatalf("changes %+v, want a offline", changes)
	}
	if s := v.Stats(); s.OnlineClients != 1 || s.OpenChannels != 1 {
		t.Fatalf("stats %+v", s)
	}
}
