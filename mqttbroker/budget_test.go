package mqttbroker

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

// The attacks of issue 12, each against small budgets: the budget holds
// (read through Stats), the attacker meets the documented behaviour, and
// other clients keep working.

// waitStats waits until cond holds for the server's stats.
func waitStats(t *testing.T, srv *testServer, what string, cond func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := srv.Stats()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; stats %+v", what, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// retainedOn subscribes c to filter and then to a sentinel topic that
// holds a retained message, and returns the payload retained on filter, or
// "" if none: retained messages come in the order of the filters
// [MQTT-3.3.1-6], so the sentinel arriving first means there was none.
func retainedOn(c *rawClient, id uint16, filter string) string {
	c.t.Helper()
	c.send(&subscribePacket{ID: id, Subscriptions: []subscription{{Filter: filter}, {Filter: "sentinel"}}})
	c.expect(typeSuback)
	p := c.receive(false)
	if p.Topic == "sentinel" {
		return ""
	}
	if s := c.receive(false); s.Topic != "sentinel" {
		c.t.Fatalf("got %+v, want the sentinel", s)
	}
	return string(p.Payload)
}

func TestRetainedBudget(t *testing.T) {
	payload := bytes.Repeat([]byte("r"), 1000)
	perMessage := retainedCost(&message{topic: "r/00", payload: payload}) + nodeCost("00")
	sentinel := retainedCost(&message{topic: "sentinel", payload: []byte("s")}) + nodeCost("sentinel")
	for _, tt := range []struct {
		name string
		cfg  Config
	}{
		{"count", Config{MaxRetainedMessages: 6, MaxRetainedBytes: 1 << 20}},
		{"bytes", Config{MaxRetainedMessages: 1000, MaxRetainedBytes: sentinel + nodeCost("r") + 5*perMessage + perMessage/2}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.AllowAnonymous = true
			srv := startServer(t, tt.cfg)
			attacker := connectOK(t, srv.addr, "attacker")
			attacker.publish(&publishPacket{Topic: "sentinel", Retain: true, QoS: 1, Payload: []byte("s")})
			watcher := connectOK(t, srv.addr, "watcher")
			// The sentinel's retained message ends the subscription's
			// retained deliveries: none can cross the publications below.
			if got := retainedOn(watcher, 1, "r/#"); got != "" {
				t.Fatalf("r/# retains %q before any publication", got)
			}

			// Twenty distinct retained topics: five fit beside the sentinel.
			for i := range 20 {
				attacker.publish(&publishPacket{Topic: fmt.Sprintf("r/%02d", i), Retain: true, QoS: 1, Payload: payload})
				// Refused or not, the message itself is delivered.
				if p := watcher.receive(false); p.Topic != fmt.Sprintf("r/%02d", i) {
					t.Fatalf("watcher got %+v", p)
				}
			}
			st := srv.Stats()
			if st.RetainedMessages != 6 || st.RetainedRefused != 15 {
				t.Fatalf("retained %d, refused %d; want 6 and 15", st.RetainedMessages, st.RetainedRefused)
			}
			if st.RetainedBytes > srv.cfg.MaxRetainedBytes {
				t.Fatalf("retained bytes %d over the budget %d", st.RetainedBytes, srv.cfg.MaxRetainedBytes)
			}

			// Replacing and clearing stored topics still work, and a
			// cleared slot takes a new topic.
			attacker.publish(&publishPacket{Topic: "r/00", Retain: true, QoS: 1, Payload: bytes.Repeat([]byte("n"), 1000)})
			attacker.publish(&publishPacket{Topic: "r/01", Retain: true, QoS: 1, Payload: []byte{}})
			attacker.publish(&publishPacket{Topic: "r/19", Retain: true, QoS: 1, Payload: payload})
			other := connectOK(t, srv.addr, "other")
			if got := retainedOn(other, 1, "r/00"); !strings.HasPrefix(got, "n") {
				t.Fatalf("r/00 retains %.10q, want the replacement", got)
			}
			if got := retainedOn(other, 2, "r/01"); got != "" {
				t.Fatalf("r/01 retains %.10q after clearing", got)
			}
			if got := retainedOn(other, 3, "r/19"); got == "" {
				t.Fatal("r/19 not stored in the slot r/01 freed")
			}
			if st := srv.Stats(); st.RetainedMessages != 6 || st.RetainedRefused != 15 {
				t.Fatalf("retained %d, refused %d; want 6 and 15", st.RetainedMessages, st.RetainedRefused)
			}
		})
	}
}

// TestRetainedReplacementOverBudget: a replacement that does not fit
// removes the old message rather than keeping a value its publisher
// replaced.
func TestRetainedReplacementOverBudget(t *testing.T) {
	small := &message{topic: "big", payload: []byte("v1")}
	budget := retainedCost(small) + nodeCost("big") + 500 +
		retainedCost(&message{topic: "sentinel", payload: []byte("s")}) + nodeCost("sentinel")
	srv := startServer(t, Config{AllowAnonymous: true, MaxRetainedBytes: budget})
	pub := connectOK(t, srv.addr, "pub")
	pub.publish(&publishPacket{Topic: "sentinel", Retain: true, QoS: 1, Payload: []byte("s")})
	pub.publish(&publishPacket{Topic: "big", Retain: true, QoS: 1, Payload: []byte("v1")})
	pub.publish(&publishPacket{Topic: "big", Retain: true, QoS: 1, Payload: make([]byte, 1000)})
	if got := retainedOn(connectOK(t, srv.addr, "sub"), 1, "big"); got != "" {
		t.Fatalf("big still retains %q", got)
	}
	if st := srv.Stats(); st.RetainedMessages != 1 || st.RetainedRefused != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestPersistentSessionBudget: sessions beyond MaxPersistentSessions are
// refused with CONNACK 0x03; queued QoS 1 messages across offline sessions
// stay within MaxSessionBytes by dropping the oldest of any session; the
// newest reach their client on reconnect.
func TestPersistentSessionBudget(t *testing.T) {
	const sessions, budget = 3, 64 << 10
	srv := startServer(t, Config{AllowAnonymous: true, MaxPersistentSessions: sessions, MaxSessionBytes: budget})
	for i := range sessions {
		id := fmt.Sprintf("offline-%d", i)
		c := connectAs(t, srv.addr, connectPacket{ClientID: id}, false)
		c.subscribe(1, 1, fmt.Sprintf("q/%d", i))
		c.send(&emptyPacket{Type: typeDisconnect})
		c.expectClosed()
		srv.rec.waitTCPClean(t, id)
	}
	extra := dial(t, srv.addr)
	if ack := extra.connect(&connectPacket{ClientID: "one-too-many"}); ack.ReturnCode != connRefusedUnavailable {
		t.Fatalf("CONNACK %d for a session over the limit, want 3", ack.ReturnCode)
	}
	if st := srv.Stats(); st.SessionsRefused != 1 || st.RefusedUnavailable != 1 || st.PersistentSessions != sessions {
		t.Fatalf("stats %+v", st)
	}

	// 600 KiB of distinct QoS 1 messages for the offline sessions.
	pub := connectOK(t, srv.addr, "flooder")
	payload := make([]byte, 1024)
	const messages = 600
	for n := range messages {
		binary.BigEndian.PutUint32(payload, uint32(n))
		pub.publish(&publishPacket{Topic: fmt.Sprintf("q/%d", n%sessions), QoS: 1, ID: uint16(n%60000 + 1), Payload: payload})
		if st := srv.Stats(); st.SessionBytes > budget {
			t.Fatalf("after message %d: session bytes %d over the budget %d", n, st.SessionBytes, budget)
		}
	}
	st := srv.Stats()
	if st.QueueEvicted == 0 || st.QueuedMessages+st.QueueEvicted != messages {
		t.Fatalf("queued %d + evicted %d, want %d with some evicted", st.QueuedMessages, st.QueueEvicted, messages)
	}

	// A resumed session is admitted at the limit and gets the newest of
	// its messages, in order, ending with the last one published for it.
	srv.sessMu.Lock()
	sess := srv.sessions["offline-2"]
	srv.sessMu.Unlock()
	sess.mu.Lock()
	kept := len(sess.queue)
	sess.mu.Unlock()
	c := connectAs(t, srv.addr, connectPacket{ClientID: "offline-2"}, true)
	var first, last uint32
	for i := range kept {
		p := c.receive(true)
		n := binary.BigEndian.Uint32(p.Payload)
		if i == 0 {
			first = n
		} else if n != last+sessions {
			t.Fatalf("message %d after %d: not the next for q/2", n, last)
		}
		last = n
	}
	t.Logf("q/2 kept %d messages, %d to %d; evicted %d in all", kept, first, last, st.QueueEvicted)
	if kept == 0 || first < messages/2 || last != messages-1 {
		t.Fatalf("q/2 kept %d messages, %d to %d: want the newest, up to %d", kept, first, last, messages-1)
	}
	// A clean client is unaffected.
	other := connectOK(t, srv.addr, "bystander")
	other.subscribe(1, 1, "b")
	pub.publish(&publishPacket{Topic: "b", QoS: 1, Payload: []byte("hi")})
	if p := other.receive(true); string(p.Payload) != "hi" {
		t.Fatalf("bystander got %+v", p)
	}
}

// stalledSubscriber connects clientID with a tiny receive buffer,
// subscribes at QoS 0 to filter and never reads again.
func stalledSubscriber(t *testing.T, addr, clientID, filter string) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.(*net.TCPConn).SetReadBuffer(4096)
	t.Cleanup(func() { nc.Close() })
	c := &rawClient{t: t, nc: nc}
	if ack := c.connect(&connectPacket{ClientID: clientID, CleanSession: true}); ack.ReturnCode != 0 {
		t.Fatalf("CONNACK %d", ack.ReturnCode)
	}
	c.subscribe(1, 0, filter)
	return c
}

// TestSlowConsumerDisconnected: a subscriber that never reads while a
// publisher floods large messages is disconnected (tcpclean reason
// slow_consumer) once MaxOutboundBytes are waiting for it; its bytes are
// freed and the publisher and other clients go on.
func TestSlowConsumerDisconnected(t *testing.T) {
	const perConn = 64 << 10
	srv := startServer(t, Config{AllowAnonymous: true, MaxPacketSize: 16 << 10, MaxOutboundBytes: perConn})
	stalledSubscriber(t, srv.addr, "never-reads", "flood/#")
	pub := connectOK(t, srv.addr, "flooder")
	payload := make([]byte, 15<<10)
	// The kernel's socket buffers take a few MB first; 5,000 messages (75
	// MB) bound the loop.
	for i := 0; srv.Stats().SlowConsumers == 0; i++ {
		if i == 5000 {
			t.Fatalf("no slow consumer after %d messages; stats %+v", i, srv.Stats())
		}
		pub.publish(&publishPacket{Topic: "flood/x", QoS: 1, ID: uint16(i%60000 + 1), Payload: payload})
		if st := srv.Stats(); st.OutboundBytes > perConn {
			t.Fatalf("%d bytes waiting for one connection, over its budget %d", st.OutboundBytes, perConn)
		}
	}
	t.Logf("disconnected after %d bytes out; stats %+v", srv.Stats().BytesOut, srv.Stats())
	if e := srv.rec.waitTCPClean(t, "never-reads"); e.Reason != presence.ReasonSlowConsumer {
		t.Fatalf("tcpclean reason %q, want slow_consumer", e.Reason)
	}
	waitStats(t, srv, "outbound bytes freed", func(st Stats) bool { return st.OutboundBytes == 0 })
	sub := connectOK(t, srv.addr, "reader")
	sub.subscribe(1, 0, "flood/#")
	pub.publish(&publishPacket{Topic: "flood/x", QoS: 1, Payload: []byte("still here")})
	if p := sub.receive(false); string(p.Payload) != "still here" {
		t.Fatalf("reader got %+v", p)
	}
}

// TestRedeliveryBurstIsNotSlow: QoS 1 messages are bounded by the
// in-flight window, not by MaxOutboundBytes, so a persistent client whose
// window of large messages exceeds it gets them all again on reconnect
// [MQTT-4.4.0-1] instead of being disconnected by its own redelivery.
func TestRedeliveryBurstIsNotSlow(t *testing.T) {
	const perConn = 32 << 10
	srv := startServer(t, Config{AllowAnonymous: true, MaxPacketSize: 16 << 10, MaxOutboundBytes: perConn})
	c := connectAs(t, srv.addr, connectPacket{ClientID: "big-window"}, false)
	c.subscribe(1, 1, "big")
	pub := connectOK(t, srv.addr, "pub")
	payload := make([]byte, 15<<10)
	const messages = 10 // 150 KiB in flight
	for i := range messages {
		pub.publish(&publishPacket{Topic: "big", QoS: 1, ID: uint16(i + 1), Payload: payload})
	}
	for range messages {
		c.receive(false) // never acknowledged
	}
	c.nc.Close()
	srv.rec.waitTCPClean(t, "big-window")
	c = connectAs(t, srv.addr, connectPacket{ClientID: "big-window"}, true)
	for range messages {
		if p := c.receive(true); !p.Dup {
			t.Fatalf("got %+v, want a redelivery", p)
		}
	}
	if st := srv.Stats(); st.SlowConsumers != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestGlobalOutboundBudget: several stalled subscribers each below their
// own budget together reach MaxOutboundBytesTotal: then they lose QoS 0
// messages instead of growing the broker, while a client that keeps up
// still receives.
func TestGlobalOutboundBudget(t *testing.T) {
	const stalled, total, packet = 4, 128 << 10, 16 << 10
	srv := startServer(t, Config{AllowAnonymous: true, MaxPacketSize: packet, MaxOutboundBytes: 1 << 20, MaxOutboundBytesTotal: total})
	for i := range stalled {
		stalledSubscriber(t, srv.addr, fmt.Sprintf("stalled-%d", i), fmt.Sprintf("g/%d", i))
	}
	pub := connectOK(t, srv.addr, "flooder")
	payload := make([]byte, 15<<10)
	for i := 0; srv.Stats().Dropped == 0; i++ {
		if i == 10000 {
			t.Fatalf("nothing dropped after %d messages; stats %+v", i, srv.Stats())
		}
		pub.publish(&publishPacket{Topic: fmt.Sprintf("g/%d", i%stalled), QoS: 1, ID: uint16(i%60000 + 1), Payload: payload})
		// A connection with nothing waiting may take one packet beyond.
		if st := srv.Stats(); st.OutboundBytes > total+stalled*packet {
			t.Fatalf("%d bytes waiting, over the budget %d", st.OutboundBytes, total)
		}
	}
	t.Logf("dropping after %d bytes out, %d waiting", srv.Stats().BytesOut, srv.Stats().OutboundBytes)
	reader := connectOK(t, srv.addr, "reader")
	reader.subscribe(1, 0, "g/0")
	pub.publish(&publishPacket{Topic: "g/0", QoS: 1, Payload: []byte("still here")})
	if p := reader.receive(false); string(p.Payload) != "still here" {
		t.Fatalf("reader got %+v", p)
	}
	if st := srv.Stats(); st.SlowConsumers != 0 || st.Channels != stalled+2 {
		t.Fatalf("QoS 0 over the global budget must drop, not disconnect; stats %+v", st)
	}
}
