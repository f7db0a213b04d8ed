package presence

import (
	"testing"
	"time"
)

func state(client, channel string, open bool, connectAt, seq int64) ChannelState {
	return ChannelState{ClientID: client, ChannelID: channel, Open: open, ConnectAt: connectAt, LastEventAt: connectAt, Seq: seq}
}

func TestViewTracksOpenChannelsAndChanges(t *testing.T) {
	v := NewView()
	changes := v.Apply([]ChannelState{state("a", "a1", true, 100, 1), state("b", "b1", true, 110, 2)})
	if len(changes) != 2 || !changes[0].Online || changes[1].ClientID != "b" {
		t.Fatalf("changes %+v, want a and b online", changes)
	}
	st := v.Status("a")
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
	st = v.Status("a")
	if !st.Online || st.OpenChannels != 1 || Millis(*st.Since) != 100 || Millis(*st.LastEventAt) != 250 {
		t.Fatalf("after takeover %+v, want online since 100 with last event 250", st)
	}
	ch := v.Apply([]ChannelState{{ClientID: "a", ChannelID: "a2", Open: false, ConnectAt: 200, LastEventAt: 300, Seq: 5}})
	if len(ch) != 1 || ch[0].Online {
		t.Fatalf("closing the last channel: %+v, want one offline change", ch)
	}
	if st := v.Status("a"); st.Online || st.State != StateOffline || st.Since != nil || Millis(*st.LastEventAt) != 300 {
		t.Fatalf("offline status %+v", st)
	}
	if s := v.Stats(); s.OnlineClients != 1 || s.OpenChannels != 1 || s.KnownClients != 2 || s.Seq != 5 {
		t.Fatalf("stats %+v", s)
	}
}

func TestViewIsIdempotent(t *testing.T) {
	v := NewView()
	s := state("a", "a1", true, 100, 1)
	v.Apply([]ChannelState{s, s})
	v.Apply([]ChannelState{s})
	if st := v.Status("a"); st.OpenChannels != 1 {
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
	v := NewView()
	if st := v.Status("nobody"); st.Online || st.State != StateOffline || st.LastEventAt != nil {
		t.Fatalf("unknown client %+v", st)
	}
	v.Apply([]ChannelState{state("c", "c1", false, 0, 1)}) // tcpclean before connect
	if st := v.Status("c"); st.Online {
		t.Fatalf("a closed channel made the client online: %+v", st)
	}
}

func TestViewLoadReplacesAndReportsDifferences(t *testing.T) {
	v := NewView()
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
	if st := v.Status("a"); st.OpenChannels != 2 || Millis(*st.Since) != 100 {
		t.Fatalf("a after load: %+v", st)
	}
	if st := v.Status("c"); st.Online || Millis(*st.LastEventAt) != 900 {
		t.Fatalf("c after load: %+v", st)
	}
	if s := v.Stats(); s.OnlineClients != 2 || s.OpenChannels != 3 || s.KnownClients != 3 || s.Seq != 9 {
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

func TestViewListAndStatusMany(t *testing.T) {
	v := NewView()
	var states []ChannelState
	for i, id := range []string{"g1@@@c", "g1@@@a", "g2@@@a", "g1@@@b", "g1@@@d"} {
		states = append(states, state(id, "ch"+id, id != "g1@@@d", 100, int64(i+1)))
	}
	v.Apply(states)
	page, more := v.List(ListQuery{State: StateOnline, Prefix: "g1@@@", Limit: 2})
	if len(page) != 2 || !more || page[0].ClientID != "g1@@@a" || page[1].ClientID != "g1@@@b" {
		t.Fatalf("page 1: %+v more=%v", page, more)
	}
	page, more = v.List(ListQuery{State: StateOnline, Prefix: "g1@@@", After: "g1@@@b", Limit: 2})
	if len(page) != 1 || more || page[0].ClientID != "g1@@@c" {
		t.Fatalf("page 2: %+v more=%v", page, more)
	}
	if page, _ := v.List(ListQuery{State: StateOffline, Limit: 10}); len(page) != 1 || page[0].ClientID != "g1@@@d" {
		t.Fatalf("offline: %+v", page)
	}
	if page, _ := v.List(ListQuery{Limit: 10}); len(page) != 5 {
		t.Fatalf("all: %d", len(page))
	}
	st := v.StatusMany([]string{"g2@@@a", "nobody", "g2@@@a"})
	if len(st) != 3 || !st[0].Online || st[1].Online || st[1].ClientID != "nobody" || !st[2].Online {
		t.Fatalf("StatusMany %+v", st)
	}
	if s := v.PrefixStats("g1@@@"); s.OnlineClients != 3 || s.OpenChannels != 3 || s.KnownClients != 4 {
		t.Fatalf("prefix stats %+v", s)
	}
}

func TestViewAnswersUnknownForSilentNodes(t *testing.T) {
	v := NewView()
	a := state("a", "a1", true, 100, 1)
	a.Node = "n1"
	b1, b2 := state("b", "b1", true, 100, 2), state("b", "b2", true, 100, 3)
	b1.Node, b2.Node = "n1", "n2"
	v.Apply([]ChannelState{a, b1, b2})
	silentSince := time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)
	v.SetSilentNodes(map[string]time.Time{"n1": silentSince})
	if st := v.Status("a"); st.State != StateUnknown || st.Online || st.Node != "n1" || st.Since == nil || !st.Since.Equal(silentSince) {
		t.Fatalf("client on a silent node: %+v", st)
	}
	if st := v.Status("b"); st.State != StateOnline || st.Node != "" {
		t.Fatalf("client with a channel on a live node: %+v", st)
	}
	v.SetSilentNodes(nil)
	if st := v.Status("a"); st.State != StateOnline || !st.Online {
		t.Fatalf("after the node came back: %+v", st)
	}
}
