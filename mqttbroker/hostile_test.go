package mqttbroker

import (
	"bytes"
	"context"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

// TestMalformedAfterConnect sends every malformed fixture that is not a
// CONNECT, and every server-only packet, on an established connection: the
// server closes it, emits tcpclean with reason protocol_error, and
// publishes the will.
func TestMalformedAfterConnect(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true})
	watcher := connectOK(t, srv.addr, "watcher")
	watcher.subscribe(1, 0, "wills/#")
	type hostile struct {
		name, clause string
		wire         []byte
	}
	var cases []hostile
	for _, f := range malformedFixtures {
		if f.wire[0]>>4 != byte(typeConnect) {
			cases = append(cases, hostile{f.name, f.clause, f.wire})
		}
	}
	for _, f := range packetFixtures {
		switch f.value.kind() {
		case typeConnack, typeSuback, typeUnsuback, typePingresp, typeConnect: // server-only, or a second CONNECT [MQTT-3.1.0-2]
			cases = append(cases, hostile{"client sends " + f.name, "MQTT-2.2.1", f.wire})
		}
	}
	cases = append(cases,
		hostile{"5-byte remaining length", "MQTT-2.2.3", []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}},
		hostile{"256 MB remaining length", "MQTT-2.2.3", []byte{0x30, 0xff, 0xff, 0xff, 0x7f}},
		hostile{"truncated PUBLISH then close", "MQTT-2.2.3", []byte{0x30, 10, 0, 3, 'a'}},
	)
	for i, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			id := "hostile-" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
			c := connectAs(t, srv.addr, connectPacket{ClientID: id, CleanSession: true,
				Will: &willMessage{Topic: "wills/" + id, Payload: []byte("bye")}}, false)
			c.write(tt.wire)
			if strings.HasPrefix(tt.name, "truncated") {
				c.nc.(interface{ CloseWrite() error }).CloseWrite()
			}
			c.expectClosed()
			e := srv.rec.waitTCPClean(t, id)
			if e.Reason != presence.ReasonProtocolError {
				t.Fatalf("tcpclean reason %q, want protocol_error (%s)", e.Reason, tt.clause)
			}
			if got := types(srv.rec.forClient(id)); len(got) != 2 {
				t.Fatalf("events %v, want connect and tcpclean", got)
			}
			if p := watcher.receive(true); p.Topic != "wills/"+id {
				t.Fatalf("will %+v", p)
			}
		})
	}
}

// TestMalformedConnect: a malformed CONNECT closes the connection without
// CONNACK [MQTT-4.8.0-1] and emits no event.
func TestMalformedConnect(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true})
	for _, f := range malformedFixtures {
		if f.wire[0]>>4 != byte(typeConnect) || f.clause == "MQTT-3.1.2-2" {
			continue
		}
		t.Run(f.name, func(t *testing.T) {
			c := dial(t, srv.addr)
			c.write(f.wire)
			if f.name == "CONNECT truncated" {
				c.nc.(interface{ CloseWrite() error }).CloseWrite()
			}
			c.expectClosed()
		})
	}
	// Invalid UTF-8 or U+0000 in the user name or will topic, too.
	for name, p := range map[string]*connectPacket{
		"invalid UTF-8 in user name": {ClientID: "u1", HasUsername: true, Username: "\xc3\x28"},
		"U+0000 in will topic":       {ClientID: "u2", Will: &willMessage{Topic: "a\x00b"}},
		"QoS 3 will":                 {ClientID: "u3", Will: &willMessage{Topic: "w", QoS: 3}},
	} {
		t.Run(name, func(t *testing.T) {
			p.ProtocolName, p.ProtocolLevel, p.CleanSession = "MQTT", 4, true
			c := dial(t, srv.addr)
			c.send(p)
			c.expectClosed()
		})
	}
	waitConnectionsFinished(t, srv) // past the last event any of them could emit
	if got := srv.rec.snapshot(); len(got) != 0 {
		t.Fatalf("events %v, want none", got)
	}
}

func TestTopicLimits(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true, MaxTopicLevels: 128, MaxSubscriptionsPerClient: 2})
	deep := strings.Repeat("a/", 199) + "a" // 200 levels
	c := connectOK(t, srv.addr, "deep")
	if codes := c.subscribe(1, 1, deep, "ok/#"); !bytes.Equal(codes, []byte{subackFailure, 1}) {
		t.Fatalf("SUBACK %v, want [0x80 1]", codes)
	}
	c.publish(&publishPacket{Topic: deep, QoS: 1, Payload: []byte("x")}) // acknowledged, dropped
	if codes := c.subscribe(2, 0, "s/1", "s/2"); !bytes.Equal(codes, []byte{0, subackFailure}) {
		t.Fatalf("third subscription: SUBACK %v, want [0 0x80]", codes)
	}
	if n := srv.Stats().LimitRejections; n != 3 {
		t.Fatalf("LimitRejections = %d, want 3", n)
	}
	// With the limit raised, 200 levels route.
	srv2 := startServer(t, Config{AllowAnonymous: true, MaxTopicLevels: 256})
	c2 := connectOK(t, srv2.addr, "deep2")
	c2.subscribe(1, 1, deep)
	// Another client publishes: c2's own PUBACK and the copy it is sent
	// leave on different goroutines, in either order.
	connectOK(t, srv2.addr, "deep2-pub").publish(&publishPacket{Topic: deep, QoS: 1, ID: 7, Payload: []byte("x")})
	if p := c2.receive(true); p.Topic != deep {
		t.Fatalf("got %+v", p)
	}
}

func TestMaxConnections(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true, MaxConnections: 2})
	connectOK(t, srv.addr, "one")
	connectOK(t, srv.addr, "two")
	c := dial(t, srv.addr)
	c.expectClosed()
	if st := srv.Stats(); st.ConnectionsOverLimit != 1 || st.Refused != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestHugeRemainingLengthClaims: 1,000 connections each announcing a
// 256 MB packet are closed and cost no memory; 1,000 announcing packets just
// under the limit and sending nothing more cost only their first chunk.
func TestHugeRemainingLengthClaims(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 2,000 connections")
	}
	srv := startServer(t, Config{AllowAnonymous: true, MaxPacketSize: 256 << 10})
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	dialMany := func(n int, wire []byte) []*rawClient {
		clients := make([]*rawClient, n)
		var wg sync.WaitGroup
		for i := range clients {
			clients[i] = dial(t, srv.addr)
		}
		for _, c := range clients {
			wg.Go(func() { c.nc.Write(wire) })
		}
		wg.Wait()
		return clients
	}
	huge := []byte{0x30, 0xff, 0xff, 0xff, 0x7f} // 256 MB PUBLISH as the first packet
	for _, c := range dialMany(1000, huge) {
		c.expectClosed()
	}
	// 250 KiB announced, 8 bytes sent: the connections stay, waiting.
	almost := append(encodePacket(&connectPacket{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "x"})[:2], make([]byte, 6)...)
	almost[1] = 0x80 // CONNECT, remaining length 0x80 0xd0 0x0f = 256,000
	almost[2], almost[3] = 0xd0, 0x0f
	waiting := dialMany(1000, almost)
	deadline := time.Now().Add(5 * time.Second)
	for srv.Stats().Connections < 1000 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	// Measure once every one of them has read its 8 bytes and waits for
	// the rest of the body: no counter says so (BytesIn counts whole
	// packets), but their goroutines are then all in readLarge.
	waitUntil(t, "1,000 connections waiting for a packet body", func() bool {
		return goroutinesIn("(*packetReader).readLarge") >= 1000
	})
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("heap grew %d KiB for 1,000 waiting connections", grown>>10)
	if grown > 32<<20 {
		t.Fatalf("heap grew %d MiB; announced sizes must not be allocated up front", grown>>20)
	}
	for _, c := range waiting {
		c.nc.Close()
	}
	if n := srv.Stats().ProtocolErrors; n < 1000 {
		t.Fatalf("ProtocolErrors = %d, want ≥ 1000", n)
	}
}

// goroutinesIn counts the goroutines whose stack holds a call of fn.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		if n := runtime.Stack(buf, true); n < len(buf) {
			return bytes.Count(buf[:n], []byte(fn+"("))
		}
		buf = make([]byte, 2*len(buf))
	}
}

// emfileListener fails its first Accept as a process out of descriptors
// would.
type emfileListener struct {
	net.Listener
	failed atomic.Bool
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if !l.failed.Swap(true) {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestOutOfDescriptorsShedsConnections: when accept fails for want of a
// descriptor, the broker accepts the waiting client on its reserve
// descriptor and closes it at once instead of leaving it in the backlog.
func TestOutOfDescriptorsShedsConnections(t *testing.T) {
	srv := New(Config{AllowAnonymous: true, Logger: discardLogger()}, nil)
	ln, err := Listen(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(&emfileListener{Listener: ln})
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	shed := dial(t, ln.Addr().String())
	shed.expectClosed()
	connectOK(t, ln.Addr().String(), "after")
	if st := srv.Stats(); st.ConnectionsOverLimit != 1 || st.Connects != 1 {
		t.Fatalf("stats %+v", st)
	}
}
