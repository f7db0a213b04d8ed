package mqttbroker

import (
	"testing"

	"github.com/presenced/presenced/presence"
)

// TestTakeoverUnrecordedKeepsOldConnection: a new connection whose connect
// cannot be recorded is refused (CONNACK 0x03) before anything happens to
// the connection it would have taken over, which keeps working.
func TestTakeoverUnrecordedKeepsOldConnection(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true})
	old := connectOK(t, srv.addr, "twin")
	srv.rec.mu.Lock()
	srv.rec.failConnect = true
	srv.rec.mu.Unlock()

	refused := dial(t, srv.addr)
	if ack := refused.connect(&connectPacket{ClientID: "twin", CleanSession: true}); ack.ReturnCode != connRefusedUnavailable {
		t.Fatalf("CONNACK %d, want 3", ack.ReturnCode)
	}
	refused.expectClosed()

	// The old connection still answers: its PINGRESP comes after the
	// refusal, so a close caused by it would have come first.
	old.send(&emptyPacket{Type: typePingreq})
	old.expect(typePingresp)
	events := srv.rec.forClient("twin")
	if len(events) != 1 || events[0].Type != presence.EventConnect {
		t.Fatalf("events %v, want only the old connect", events)
	}
}

// TestTakeoverChain: each connection of a client id taken over in turn
// names the next one, and every tcpclean follows its successor's connect.
func TestTakeoverChain(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true})
	var clients []*rawClient
	for range 5 {
		clients = append(clients, connectOK(t, srv.addr, "chain"))
	}
	for _, c := range clients[:4] {
		c.expectClosed()
	}
	events := srv.rec.forClient("chain")
	connectedAt := map[string]int{}
	for i, e := range events {
		switch e.Type {
		case presence.EventConnect:
			connectedAt[e.ChannelID] = i
		case presence.EventTCPClean:
			at, ok := connectedAt[e.TakeoverBy]
			if e.Reason != presence.ReasonTakeover || !ok || at > i {
				t.Fatalf("tcpclean %d (%v, takeoverBy %q) does not follow its successor's connect: %v", i, e, e.TakeoverBy, events)
			}
		}
	}
	if len(events) != 9 {
		t.Fatalf("%d events, want 5 connects and 4 tcpcleans: %v", len(events), events)
	}
}
