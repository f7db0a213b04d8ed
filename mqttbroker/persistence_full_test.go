package mqttbroker

import (
	"encoding/binary"
	"testing"
	"time"
)

// fullStoreTopic is the topic fillStoreForOffline publishes on.
const fullStoreTopic = "q"

// fullStoreMaxBytes is the store size of these tests: small, so that a
// few dozen messages fill it.
const fullStoreMaxBytes = 48 << 10

// fillStoreForOffline subscribes the persistent session "offline" to
// fullStoreTopic at QoS 1, stores the retained message of barrierTopic
// (while there is room for it), and fills the store with QoS 1 messages
// queued for the offline session: messages of 1000 bytes until the store
// refuses one, then of 2 until it refuses another. Each payload begins
// with its PUBLISH's packet id. It returns the ids the v5 publisher got
// PUBACK success for, and those it got 0x97 (quota exceeded) for.
func fillStoreForOffline(t *testing.T, addr string, srv *Server) (accepted, refused map[uint16]bool) {
	t.Helper()
	sub := connectAs(t, addr, connectPacket{ClientID: "offline", Keepalive: 60}, false)
	sub.subscribe(1, 1, fullStoreTopic)
	sub.nc.Close()
	// Offline once the server has seen the close: until then, messages
	// would go in flight to the closing connection.
	waitUntil(t, "the subscriber to go offline", func() bool { return srv.Stats().Connections == 0 })
	pub := dial(t, addr)
	pub.connect(&connectPacket{ProtocolLevel: 5, ProtocolName: "MQTT", ClientID: "pub5", CleanSession: true})
	pub.retainBarrier()
	accepted, refused = map[uint16]bool{}, map[uint16]bool{}
	for id := uint16(1); id < 2000 && len(refused) < 2; id++ {
		payload := make([]byte, 1000)
		if len(refused) > 0 {
			payload = payload[:2]
		}
		binary.BigEndian.PutUint16(payload, id)
		pub.send(&publishPacket{Topic: fullStoreTopic, QoS: 1, ID: id, Payload: payload, V5: true})
		switch ack := pub.expect(typePuback).(*ackPacket); ack.Reason {
		case rcSuccess:
			accepted[id] = true
		case rcQuotaExceeded:
			refused[id] = true
		default:
			t.Fatalf("PUBACK %+v, want success or quota exceeded", ack)
		}
	}
	if len(refused) < 2 {
		t.Fatalf("the %d-byte store took %d messages and refused %d", fullStoreMaxBytes, len(accepted), len(refused))
	}
	pub.nc.Close()
	return accepted, refused
}

// drainOffline reconnects the offline session (resumed, or restored by
// a restart) and acknowledges what it is sent until it has every accepted
// message, each exactly once and no refused one; the barrier then proves
// that nothing more was on its way. seen are the messages the session was
// already sent, unacknowledged: only those may come again, with DUP.
func drainOffline(t *testing.T, addr string, accepted, refused, seen map[uint16]bool) {
	t.Helper()
	sub := connectAs(t, addr, connectPacket{ClientID: "offline", Keepalive: 60}, true)
	got := map[uint16]bool{}
	for len(got) < len(accepted) {
		p, err := sub.next(5 * time.Second)
		if err != nil {
			t.Fatalf("got %d of the %d accepted messages, missing %v: %v", len(got), len(accepted), missing(accepted, got), err)
		}
		pub, ok := p.(*publishPacket)
		if !ok || pub.Topic != fullStoreTopic || len(pub.Payload) < 2 {
			t.Fatalf("got %s (%+v), want a PUBLISH on %q", p.kind(), p, fullStoreTopic)
		}
		sub.send(&ackPacket{Type: typePuback, ID: pub.ID})
		id := binary.BigEndian.Uint16(pub.Payload)
		switch {
		case refused[id]:
			t.Errorf("message %d was delivered, but its publisher was refused it (PUBACK 0x97)", id)
		case !accepted[id]:
			t.Fatalf("message %d was never published", id)
		case got[id]:
			t.Errorf("message %d was delivered twice", id)
		case pub.Dup && !seen[id]:
			t.Errorf("message %d came with DUP, but was never sent before", id)
		}
		got[id] = true
	}
	sub.barrier(1) // fails if any other message comes first
}

func missing(want, got map[uint16]bool) []uint16 {
	var ids []uint16
	for id := range want {
		if !got[id] {
			ids = append(ids, id)
		}
	}
	return ids
}

// A persistent session resuming on a full store moves its queued
// messages in flight, and they stay durable: after a restart every
// message its publisher got PUBACK success for is delivered, exactly
// once, and none refused with 0x97. The move is one record the store
// never refuses (persist.SendQueued); a removal from the queue followed
// by a re-add in flight, which a full store refuses, lost them.
func TestPersistenceFullResumeKeepsAcceptedMessagesAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	addr, srv, stop := persistentBroker(t, dir, fullStoreMaxBytes)
	accepted, refused := fillStoreForOffline(t, addr, srv)
	// Resume: the window's worth of queued messages goes in flight, and
	// is not acknowledged.
	sub := connectAs(t, addr, connectPacket{ClientID: "offline", Keepalive: 60}, true)
	seen := map[uint16]bool{}
	for range min(srv.cfg.InflightWindow, len(accepted)) {
		p := sub.receive(false)
		id := binary.BigEndian.Uint16(p.Payload)
		if !accepted[id] || seen[id] {
			t.Fatalf("message %d sent on resumption: accepted %t, sent before %t", id, accepted[id], seen[id])
		}
		seen[id] = true
	}
	sub.nc.Close()
	stop()

	addr, _, _ = persistentBroker(t, dir, fullStoreMaxBytes)
	drainOffline(t, addr, accepted, refused, seen)
}

// A message the store refused (PUBACK 0x97: the server did not accept
// it) is not delivered either: the offline session's queue in memory holds
// what the store holds, so the session, resuming, gets every accepted
// message once and no refused one.
func TestPersistenceFullNeverDeliversRefusedMessage(t *testing.T) {
	addr, srv, _ := persistentBroker(t, t.TempDir(), fullStoreMaxBytes)
	accepted, refused := fillStoreForOffline(t, addr, srv)
	drainOffline(t, addr, accepted, refused, nil)
}
