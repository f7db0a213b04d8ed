package mqttbroker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/presenced/presenced/mqttbroker/persist"
)

// persistentBroker runs a broker on dir's durable state until stop is
// called (graceful: Shutdown, then the store is closed).
func persistentBroker(t *testing.T, dir string, maxBytes ...int64) (addr string, srv *Server, stop func()) {
	t.Helper()
	opts := persist.Options{Log: discardLogger()}
	if len(maxBytes) > 0 {
		opts.MaxBytes = maxBytes[0]
	}
	store, state, err := persist.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv = New(Config{Node: "n", Epoch: "e", AllowAnonymous: true, Logger: discardLogger(), Persistence: store, Persisted: state}, nil)
	ln, err := Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
		if err := store.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	}
	t.Cleanup(stop)
	return ln.Addr().String(), srv, stop
}

// What a persistent session holds in flight in both directions survives a
// restart: the unacknowledged QoS 1 message is resent with DUP, the QoS 2
// message whose PUBREC came gets its PUBREL again, the inbound QoS 2 id
// awaiting PUBREL is still known [MQTT-4.3.3-2], the subscription still
// routes, and the retained message is kept.
func TestPersistedSessionInFlightSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	addr, _, stop := persistentBroker(t, dir)
	sub := connectAs(t, addr, connectPacket{ClientID: "sub", Keepalive: 60}, false)
	if codes := sub.subscribe(1, 2, "t/#"); codes[0] != 2 {
		t.Fatalf("SUBACK %v", codes)
	}
	pub := connectOK(t, addr, "pub")
	pub.publish(&publishPacket{Topic: "t/1", QoS: 1, ID: 1, Payload: []byte("one")})
	pub.publish(&publishPacket{Topic: "t/2", QoS: 2, ID: 2, Payload: []byte("two")})
	pub.publish(&publishPacket{Topic: "r", QoS: 1, ID: 3, Retain: true, Payload: []byte("kept")})
	one := sub.receive(false) // not acknowledged
	two := sub.receive(false)
	sub.send(&ackPacket{Type: typePubrec, ID: two.ID})
	sub.expect(typePubrel) // and no PUBCOMP
	sub.send(&publishPacket{Topic: "in/q2", QoS: 2, ID: 77, Payload: []byte("inbound")})
	sub.expect(typePubrec) // and no PUBREL
	sub.nc.Close()
	pub.nc.Close()
	stop()

	addr, srv, _ := persistentBroker(t, dir)
	sub = connectAs(t, addr, connectPacket{ClientID: "sub", Keepalive: 60}, true)
	again := sub.expect(typePublish).(*publishPacket)
	if !again.Dup || again.ID != one.ID || string(again.Payload) != "one" || again.QoS != 1 {
		t.Fatalf("resent %+v, want DUP of %q id %d", again, "one", one.ID)
	}
	if rel := sub.expect(typePubrel).(*ackPacket); rel.ID != two.ID {
		t.Fatalf("PUBREL id %d, want %d", rel.ID, two.ID)
	}
	srv.sessMu.Lock()
	sess := srv.sessions["sub"]
	srv.sessMu.Unlock()
	sess.mu.Lock()
	_, held := sess.unreleased[77]
	sess.mu.Unlock()
	if !held {
		t.Fatal("inbound QoS 2 id 77 awaiting PUBREL was forgotten")
	}
	// The subscription was restored: a new message reaches the session.
	pub = connectOK(t, addr, "pub2")
	pub.publish(&publishPacket{Topic: "t/3", QoS: 1, ID: 4, Payload: []byte("three")})
	if p := sub.receive(true); string(p.Payload) != "three" {
		t.Fatalf("after restart received %q, want %q", p.Payload, "three")
	}
	fresh := connectOK(t, addr, "fresh")
	fresh.subscribe(1, 1, "r")
	if p := fresh.receive(true); string(p.Payload) != "kept" || !p.Retain {
		t.Fatalf("retained after restart: %+v", p)
	}
}

// When the store is full, a QoS 1 PUBLISH that would be queued for an
// offline persistent session is refused: PUBACK 0x97 for a v5 publisher,
// the connection closed for a 3.1.1 one (it has no negative PUBACK).
func TestPersistenceFullRefusesPublish(t *testing.T) {
	addr, _, _ := persistentBroker(t, t.TempDir(), 48<<10)
	sub := connectAs(t, addr, connectPacket{ClientID: "offline", Keepalive: 60}, false)
	sub.subscribe(1, 1, "q")
	sub.nc.Close()
	pub := dial(t, addr)
	pub.connect(&connectPacket{ProtocolLevel: 5, ProtocolName: "MQTT", ClientID: "pub5", CleanSession: true})
	payload := make([]byte, 1000)
	refused := false
	for i := 1; i < 200 && !refused; i++ {
		pub.send(&publishPacket{Topic: "q", QoS: 1, ID: uint16(i), Payload: payload, V5: true})
		ack := pub.expect(typePuback).(*ackPacket)
		refused = ack.Reason == rcQuotaExceeded
	}
	if !refused {
		t.Fatal("no PUBACK 0x97 while filling a 16 KiB state")
	}
	v3 := connectOK(t, addr, "pub3")
	v3.send(&publishPacket{Topic: "q", QoS: 1, ID: 1, Payload: payload})
	v3.expectClosed()
}
