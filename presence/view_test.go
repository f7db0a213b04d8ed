package presence

import "testing"

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
