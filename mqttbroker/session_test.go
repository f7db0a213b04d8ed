package mqttbroker

import (
	"testing"
	"time"
)

func TestPersistentSessionQueuesWhileOffline(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true})
	c := connectAs(t, srv.addr, connectPacket{ClientID: "durable"}, false)
	c.subscribe(1, 2, "d/#")
	c.send(&emptyPacket{Type: typeDisconnect})
	c.expectClosed()
	srv.rec.waitTCPClean(t, "durable")

	pub := connectOK(t, srv.addr, "durable-pub")
	pub.retainBarrier()
	pub.publish(&publishPacket{Topic: "d/0", QoS: 0, Payload: []byte("q0")})
	pub.publish(&publishPacket{Topic: "d/1", QoS: 1, Payload: []byte("q1")})
	pub.publish(&publishPacket{Topic: "d/2", QoS: 2, Payload: []byte("q2")})

	// [MQTT-3.2.2-2] session present; queued QoS 1 and 2 arrive at once,
	// without subscribing again [MQTT-3.1.2-4].
	c = connectAs(t, srv.addr, connectPacket{ClientID: "durable"}, true)
	if p := c.receive(true); p.Topic != "d/1" || p.QoS != 1 || p.Dup {
		t.Fatalf("first: %+v", p)
	}
	if p := c.receive(true); p.Topic != "d/2" || p.QoS != 2 {
		t.Fatalf("second: %+v", p)
	}
	// QoS 0 is not kept offline: whatever the session kept was handed to
	// the connection during CONNECT (resume), before the barrier.
	c.barrier(1)
	// The subscription is still there.
	pub.publish(&publishPacket{Topic: "d/live", QoS: 1, Payload: []byte("live")})
	if p := c.receive(true); p.Topic != "d/live" {
		t.Fatalf("live: %+v", p)
	}
}

func TestRedeliveryWithDupOnReconnect(t *testing.T) {
	// [MQTT-4.4.0-1] unacknowledged PUBLISH packets are resent with DUP set;
	// a PUBREC'd QoS 2 message gets its PUBREL again, not the PUBLISH.
	srv := startServer(t, Config{AllowAnonymous: true})
	c := connectAs(t, srv.addr, connectPacket{ClientID: "forgetful"}, false)
	c.subscribe(1, 2, "f/+")
	pub := connectOK(t, srv.addr, "forgetful-pub")
	pub.retainBarrier()
	pub.publish(&publishPacket{Topic: "f/1", QoS: 1, Payload: []byte("one")})
	pub.publish(&publishPacket{Topic: "f/2", QoS: 2, Payload: []byte("two")})
	pub.publish(&publishPacket{Topic: "f/3", QoS: 2, Payload: []byte("three")})
	p1 := c.receive(false)
	p2 := c.receive(false)
	p3 := c.receive(false)
	c.send(&ackPacket{Type: typePubrec, ID: p3.ID})
	c.expect(typePubrel)
	c.nc.Close()
	srv.rec.waitTCPClean(t, "forgetful")

	c = connectAs(t, srv.addr, connectPacket{ClientID: "forgetful"}, true)
	for _, want := range []*publishPacket{p1, p2} {
		p := c.expect(typePublish).(*publishPacket)
		if !p.Dup || p.ID != want.ID || p.Topic != want.Topic || p.QoS != want.QoS {
			t.Fatalf("redelivered %+v, want %+v with DUP", p, want)
		}
	}
	if rel := c.expect(typePubrel).(*ackPacket); rel.ID != p3.ID {
		t.Fatalf("PUBREL %+v, want id %d", rel, p3.ID)
	}
	c.send(&ackPacket{Type: typePuback, ID: p1.ID})
	c.send(&ackPacket{Type: typePubrec, ID: p2.ID})
	c.expect(typePubrel)
	c.send(&ackPacket{Type: typePubcomp, ID: p2.ID})
	c.send(&ackPacket{Type: typePubcomp, ID: p3.ID})
	// Nothing delivered twice more: resume and the acknowledgements were
	// all handled before the barrier's SUBSCRIBE.
	c.barrier(1)
}

func TestCleanSessionDiscardsState(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true})
	c := connectAs(t, srv.addr, connectPacket{ClientID: "flip"}, false)
	c.subscribe(1, 1, "flip/t")
	c.nc.Close()
	srv.rec.waitTCPClean(t, "flip")
	// [MQTT-3.1.2-6] CleanSession=1 discards the stored session
	// [MQTT-3.2.2-1] and reports none.
	c = connectAs(t, srv.addr, connectPacket{ClientID: "flip", CleanSession: true}, false)
	c.retainBarrier()
	c.publish(&publishPacket{Topic: "flip/t", QoS: 1, Payload: []byte("x")})
	// flip/t was routed before c had its PUBACK: had the old subscription
	// survived, the copy would come before the barrier.
	c.barrier(1)
}

func TestSessionQueueLimitDropsOldest(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true, MaxQueuedMessages: 3})
	c := connectAs(t, srv.addr, connectPacket{ClientID: "queued"}, false)
	c.subscribe(1, 1, "ql")
	c.nc.Close()
	srv.rec.waitTCPClean(t, "queued")
	pub := connectOK(t, srv.addr, "ql-pub")
	for i := range 5 {
		pub.publish(&publishPacket{Topic: "ql", QoS: 1, Payload: []byte{byte('0' + i)}})
	}
	c = connectAs(t, srv.addr, connectPacket{ClientID: "queued"}, true)
	for _, want := range "234" {
		if p := c.receive(true); p.Payload[0] != byte(want) {
			t.Fatalf("got %q, want %q", p.Payload, want)
		}
	}
	if n := srv.Stats().QueueDropped; n != 2 {
		t.Fatalf("QueueDropped = %d, want 2", n)
	}
}

func TestSessionExpiry(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	srv := startServer(t, Config{AllowAnonymous: true, SessionExpiry: time.Hour, Now: func() time.Time { return clock() }})
	c := connectAs(t, srv.addr, connectPacket{ClientID: "abandoned"}, false)
	c.subscribe(1, 1, "x")
	c.nc.Close()
	srv.rec.waitTCPClean(t, "abandoned")
	srv.expireSessionsNow()
	if srv.Stats().Sessions != 1 {
		t.Fatalf("session expired early: %+v", srv.Stats())
	}
	srv.sessMu.Lock()
	now = now.Add(time.Hour)
	srv.sessMu.Unlock()
	srv.expireSessionsNow()
	if st := srv.Stats(); st.Sessions != 0 || st.SessionsExpired != 1 {
		t.Fatalf("stats %+v", st)
	}
	connectAs(t, srv.addr, connectPacket{ClientID: "abandoned"}, false)
}
