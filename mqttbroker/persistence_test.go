package mqttbroker

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// When the store is full, nothing that would need it is acknowledged: a
// new persistent session gets no CONNACK 0 (v5: 0x97, 3.1.1: 0x03) and a
// SUBSCRIBE of a persistent session no SUBACK (the connection closes). A
// clean session, which the store does not hold, still connects.
//
// "Full" is the bound on the live state (MaxBytes/3), which only removals
// lift, and this test removes nothing: the test fills it until the room
// left is smaller than the smallest record it adds, which every record it
// then expects refused is bigger than. The bound on the files also refuses
// while a compaction is running and lifts once it is done: such a refusal
// is waited out, not taken for a full store. The session that reconnects
// has nothing queued, so its resumption moves nothing in flight.
func TestPersistenceFullRefusesSessionsAndSubscriptions(t *testing.T) {
	const maxBytes = 48 << 10
	addr, srv, _ := persistentBroker(t, t.TempDir(), maxBytes)
	stats := srv.cfg.Persistence.Stats
	offline := connectAs(t, addr, connectPacket{ClientID: "offline", Keepalive: 60}, false)
	offline.subscribe(1, 1, "o")
	offline.nc.Close()
	filler := connectAs(t, addr, connectPacket{ClientID: "f", Keepalive: 60}, false)
	filler.subscribe(1, 1, "q")
	filler.nc.Close()
	// A connection's last records (a session's expiry, at detach) are
	// staged before the server forgets it. Waiting for that keeps them out
	// of the steps that follow: the broker refuses a CONNECT or SUBSCRIBE
	// when any record was refused on its way, its own or not.
	settle := func() {
		t.Helper()
		waitUntil(t, "every connection to finish", func() bool { return srv.Stats().Connections == 0 })
	}
	settle() // from now on only the messages queued for the filler change the state
	pub := dial(t, addr)
	pub.connect(&connectPacket{ProtocolLevel: 5, ProtocolName: "MQTT", ClientID: "pub5", CleanSession: true})
	publish := func(id uint16, payload []byte) (accepted bool) {
		t.Helper()
		pub.send(&publishPacket{Topic: "q", QoS: 1, ID: id, Payload: payload, V5: true})
		return pub.expect(typePuback).(*ackPacket).Reason != rcQuotaExceeded
	}
	// What the smallest message queued for the filler adds to the live
	// state.
	before := stats().LiveBytes
	if !publish(1, nil) {
		t.Fatalf("an empty store refused a message: %+v", stats())
	}
	smallest := stats().LiveBytes - before
	// Fill the store with messages queued for the filler session.
	payload := make([]byte, 1000)
	full := false
	for i := 2; i < 200 && !full; i++ {
		full = !publish(uint16(i), payload)
	}
	if !full {
		t.Fatal("the 48 KiB store never filled")
	}
	// Then with the smallest messages, until the live state has no room
	// for one more.
	full = false
	for i := 200; i < 2000 && !full; i++ {
		st := stats()
		if publish(uint16(i), nil) {
			continue
		}
		if full = maxBytes/3-st.LiveBytes < smallest; !full { // refused for the files: a compaction is running
			waitUntil(t, "the compaction to finish", func() bool {
				now := stats()
				return now.Compactions+now.CompactionFailures > st.Compactions+st.CompactionFailures
			})
		}
	}
	if !full {
		t.Fatalf("the 48 KiB store took 1,800 small messages more: %+v", stats())
	}
	pub.nc.Close()
	// New persistent sessions until the store has no room for one more:
	// that one gets no CONNACK 0 (v5: 0x97; 3.1.1, next: 0x03).
	refused := false
	for i := 0; i < 500 && !refused; i++ {
		v5 := dial(t, addr)
		v5.v5 = true
		v5.send(&connectPacket{ProtocolLevel: 5, ProtocolName: "MQTT", ClientID: fmt.Sprintf("new5-%03d", i), Keepalive: 60,
			Props: props(func(p *properties) { p.SessionExpiry = 3600 }, propSessionExpiry)})
		switch ack := v5.expect(typeConnack).(*connackPacket); ack.ReturnCode {
		case rcQuotaExceeded:
			refused = true
		case 0:
		default:
			t.Fatalf("v5 persistent session on a filling store: CONNACK 0x%02x", ack.ReturnCode)
		}
		v5.nc.Close()
	}
	if !refused {
		t.Fatalf("500 persistent sessions fit in a full store: %+v", stats())
	}
	v3 := dial(t, addr)
	v3.send(&connectPacket{ProtocolLevel: 4, ProtocolName: "MQTT", ClientID: "new5-999", Keepalive: 60, CleanSession: false})
	if ack := v3.expect(typeConnack).(*connackPacket); ack.ReturnCode != connRefusedUnavailable {
		t.Fatalf("3.1.1 persistent session on a full store: CONNACK 0x%02x, want 0x03: %+v", ack.ReturnCode, stats())
	}
	// The offline session exists already: it connects (which shrinks its
	// expiry, a few bytes), but a new subscription gets no SUBACK.
	settle() // the refused sessions' last records refused too
	back := connectAs(t, addr, connectPacket{ClientID: "offline", Keepalive: 60}, true)
	back.send(&subscribePacket{ID: 2, Subscriptions: []subscription{{Filter: "more/subscriptions/#", QoS: 1}}})
	if p, err := back.next(5 * time.Second); err == nil {
		t.Fatalf("got %s (%+v) on a full store, want no SUBACK and the connection closed: %+v", p.kind(), p, stats())
	} else if !errors.Is(err, io.EOF) && !isConnReset(err) {
		t.Fatalf("want the connection closed, got %v", err)
	}
	if st := srv.Stats(); st.Connects == 0 {
		t.Fatalf("stats %+v", st)
	}
	settle()
	clean := connectOK(t, addr, "clean")
	clean.subscribe(1, 0, "c")
}
