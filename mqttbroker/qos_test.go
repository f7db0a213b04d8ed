package mqttbroker

import (
	"testing"
	"time"
)

func TestQoS2InboundRepeatedIDDeliveredOnce(t *testing.T) {
	// [MQTT-4.3.3-2] a PUBLISH repeated with the same id before PUBREL is
	// acknowledged again but not delivered again.
	srv := startServer(t, Config{AllowAnonymous: true})
	sub := connectOK(t, srv.addr, "q2-sub")
	sub.subscribe(1, 2, "q2")
	pub := connectOK(t, srv.addr, "q2-pub")
	pub.retainBarrier()
	for range 3 {
		pub.send(&publishPacket{Topic: "q2", QoS: 2, ID: 42, Payload: []byte("once")})
		if rec := pub.expect(typePubrec).(*ackPacket); rec.ID != 42 {
			t.Fatalf("PUBREC %+v", rec)
		}
	}
	pub.send(&ackPacket{Type: typePubrel, ID: 42})
	pub.expect(typePubcomp)
	if p := sub.receive(true); string(p.Payload) != "once" || p.QoS != 2 {
		t.Fatalf("got %+v", p)
	}
	// Each repeat was handled, delivered or not, before pub had its
	// PUBREC: a second copy would come before the barrier.
	sub.barrier(1)
	// After PUBREL the id is free again: a new message with it is delivered.
	pub.publish(&publishPacket{Topic: "q2", QoS: 2, ID: 42, Payload: []byte("again")})
	if p := sub.receive(true); string(p.Payload) != "again" {
		t.Fatalf("got %+v", p)
	}
}

func TestQoS2UnreleasedIDsBounded(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true, MaxUnreleasedQoS2: 4})
	pub := connectOK(t, srv.addr, "hoarder")
	for id := uint16(1); id <= 4; id++ {
		pub.send(&publishPacket{Topic: "h", QoS: 2, ID: id, Payload: []byte("x")})
		pub.expect(typePubrec)
	}
	pub.send(&publishPacket{Topic: "h", QoS: 2, ID: 5, Payload: []byte("x")})
	pub.expectClosed()
	if e := srv.rec.waitTCPClean(t, "hoarder"); e.Reason != "protocol_error" {
		t.Fatalf("reason %q", e.Reason)
	}
}

func TestQoS2OutboundFlow(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true})
	sub := connectOK(t, srv.addr, "q2-out")
	sub.subscribe(1, 2, "q2/out")
	pub := connectOK(t, srv.addr, "q2-out-pub")
	pub.retainBarrier()
	pub.publish(&publishPacket{Topic: "q2/out", QoS: 2, ID: 1, Payload: []byte("x")})
	p := sub.expect(typePublish).(*publishPacket)
	if p.QoS != 2 || p.ID == 0 || p.Dup {
		t.Fatalf("got %+v", p)
	}
	sub.send(&ackPacket{Type: typePubrec, ID: p.ID})
	if rel := sub.expect(typePubrel).(*ackPacket); rel.ID != p.ID {
		t.Fatalf("PUBREL %+v", rel)
	}
	sub.send(&ackPacket{Type: typePubcomp, ID: p.ID})
	// The flow is over: the broker handles PUBCOMP before the barrier's
	// SUBSCRIBE, so a resend or another PUBREL would come first.
	sub.barrier(1)
}

func TestInflightWindow(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true, InflightWindow: 3})
	sub := connectOK(t, srv.addr, "slow")
	sub.subscribe(1, 1, "w")
	pub := connectOK(t, srv.addr, "fast")
	pub.retainBarrier()
	for i := range 5 {
		pub.publish(&publishPacket{Topic: "w", QoS: 1, ID: uint16(i + 1), Payload: []byte{byte('0' + i)}})
	}
	var ids []uint16
	for i := range 3 {
		p := sub.receive(false)
		if p.Payload[0] != byte('0'+i) {
			t.Fatalf("message %d: %+v", i, p)
		}
		ids = append(ids, p.ID)
	}
	// The window is full: 3 and 4 wait in the session queue. All five were
	// delivered before pub had its PUBACKs; a QoS 0 barrier overtakes the
	// session queue but not the connection's, so it shows that 3 and 4
	// were not sent.
	sub.barrier(0)
	sub.send(&ackPacket{Type: typePuback, ID: ids[0]})
	if p := sub.receive(false); p.Payload[0] != '3' {
		t.Fatalf("after one PUBACK: %+v", p)
	}
	// One PUBACK let one message out: the PUBACK is handled, and the
	// window refilled, before the barrier's SUBSCRIBE.
	sub.barrier(0)
	sub.send(&ackPacket{Type: typePuback, ID: ids[1]})
	if p := sub.receive(true); p.Payload[0] != '4' {
		t.Fatalf("after two PUBACKs: %+v", p)
	}
}

func TestQoS0DroppedOnSlowConnection(t *testing.T) {
	// A byte budget above what 10 queued packets and a batch being written
	// can hold: the count drops, and the write timeout closes.
	srv := startServer(t, Config{AllowAnonymous: true, MaxQueuedMessages: 10, MaxOutboundBytes: 8 << 20, WriteTimeout: 200 * time.Millisecond})
	sub := connectOK(t, srv.addr, "not-reading")
	sub.subscribe(1, 0, "flood")
	pub := connectOK(t, srv.addr, "flooder")
	payload := make([]byte, 64<<10)
	for range 200 {
		pub.send(&publishPacket{Topic: "flood", Payload: payload})
	}
	pub.publish(&publishPacket{Topic: "done", QoS: 1})
	// The subscriber never reads: its writes time out and it is closed, while
	// the publisher is unharmed.
	if e := srv.rec.waitTCPClean(t, "not-reading"); e.Reason != "network_error" {
		t.Fatalf("reason %q", e.Reason)
	}
	pub.publish(&publishPacket{Topic: "still/alive", QoS: 1})
	if srv.Stats().Dropped == 0 {
		t.Fatalf("no QoS 0 drops counted: %+v", srv.Stats())
	}
}
