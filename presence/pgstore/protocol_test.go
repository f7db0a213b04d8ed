package pgstore_test

import (
	"testing"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

func withCode(e presence.Event, code int) presence.Event { e.ReasonCode = &code; return e }

// TestProtocolLevelAndReasonCode: a connect's protocol level and the MQTT 5
// reason code of a close reach the channel and the history, whatever the
// order the events arrive in; a tcpclean's code wins over a disconnect's;
// a takeover close held back keeps its code; 3.1.1 connections carry none.
func TestProtocolLevelAndReasonCode(t *testing.T) {
	s := pgtest.NewStore(t)
	connect := func(client, channel string, level int) presence.Event {
		e := ev(client, channel, presence.EventConnect, 1)
		e.ProtocolLevel = level
		return e
	}
	// In order, in separate batches: the disconnect's code 0x04, then the
	// tcpclean's (the same DISCONNECT) — the tcpclean's is kept.
	mustApply(t, s, connect("v5", "a", 5))
	mustApply(t, s, withCode(ev("v5", "a", presence.EventDisconnect, 2), 0x04))
	mustApply(t, s, withCode(ev("v5", "a", presence.EventTCPClean, 3), 0x00))
	// Reversed: tcpclean (server-sent 0x8D keep alive timeout) first, then a
	// late disconnect with another code, then the connect.
	mustApply(t, s, withCode(withReason(ev("v5r", "b", presence.EventTCPClean, 3), presence.ReasonKeepaliveTimeout), 0x8D))
	mustApply(t, s, withCode(ev("v5r", "b", presence.EventDisconnect, 2), 0x00))
	mustApply(t, s, connect("v5r", "b", 5))
	// MQTT 3.1.1: a level, no codes.
	mustApply(t, s, connect("v4", "c", 4), ev("v4", "c", presence.EventTCPClean, 2))
	// A takeover close (0x8E) held until its successor arrives.
	mustApply(t, s, connect("tk", "old", 5))
	res := mustApply(t, s, withCode(takeoverClose("tk", "old", "new", 5), 0x8E))
	if res.Held != 1 {
		t.Fatalf("held %d takeover closes, want 1", res.Held)
	}
	mustApply(t, s, connect("tk", "new", 5))

	for _, tc := range []struct {
		client, channel string
		level           int
		code            int // -1: none
	}{
		{"v5", "a", 5, 0x00}, {"v5r", "b", 5, 0x8D}, {"v4", "c", 4, -1}, {"tk", "old", 5, 0x8E}, {"tk", "new", 5, -1},
	} {
		channels, err := s.Channels(ctx, tc.client, 10)
		if err != nil {
			t.Fatal(err)
		}
		var ch *presence.Channel
		for i := range channels {
			if channels[i].ChannelID == tc.channel {
				ch = &channels[i]
			}
		}
		if ch == nil {
			t.Fatalf("%s: channel %s missing: %+v", tc.client, tc.channel, channels)
		}
		if ch.ProtocolLevel != tc.level {
			t.Errorf("%s/%s: protocol level %d, want %d", tc.client, tc.channel, ch.ProtocolLevel, tc.level)
		}
		switch {
		case tc.code < 0 && ch.ReasonCode != nil:
			t.Errorf("%s/%s: reason code %d, want none", tc.client, tc.channel, *ch.ReasonCode)
		case tc.code >= 0 && (ch.ReasonCode == nil || *ch.ReasonCode != tc.code):
			t.Errorf("%s/%s: reason code %v, want 0x%02X", tc.client, tc.channel, ch.ReasonCode, tc.code)
		}
	}
	history, err := s.History(ctx, presence.HistoryQuery{ClientID: "v5", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	byType := map[presence.EventType]presence.StoredEvent{}
	for _, e := range history {
		byType[e.Type] = e
	}
	if byType[presence.EventConnect].ProtocolLevel != 5 || byType[presence.EventConnect].ReasonCode != nil {
		t.Errorf("connect in history: %+v", byType[presence.EventConnect])
	}
	if d := byType[presence.EventDisconnect].ReasonCode; d == nil || *d != 0x04 {
		t.Errorf("disconnect in history: code %v, want 0x04", d)
	}
	if c := byType[presence.EventTCPClean].ReasonCode; c == nil || *c != 0x00 {
		t.Errorf("tcpclean in history: code %v, want 0x00", c)
	}
}
