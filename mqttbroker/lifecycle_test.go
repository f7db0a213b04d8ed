package mqttbroker

import (
	"net"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

var channelIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestConnectEventBeforeConnack(t *testing.T) {
	fixed := time.UnixMilli(1732240000123)
	srv := startServer(t, Config{AllowAnonymous: true, Now: func() time.Time { return fixed }})
	c := dial(t, srv.addr)
	c.send(&connectPacket{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "GID_a@@@dev-1", Keepalive: 30,
		HasUsername: true, Username: "alice"})
	c.expect(typeConnack)
	// The connect event was handed to the sink before CONNACK was written.
	events := srv.rec.snapshot()
	if len(events) != 1 {
		t.Fatalf("events after CONNACK = %v, want one connect", events)
	}
	e := events[0]
	if e.Type != presence.EventConnect || e.ClientID != "GID_a@@@dev-1" || e.Time != 1732240000123 ||
		e.Node != "test-node" || e.Epoch != "test-epoch" || e.Username != "alice" || e.Keepalive != 30 ||
		e.CleanSession == nil || *e.CleanSession || !channelIDPattern.MatchString(e.ChannelID) ||
		e.ClientIP != c.nc.LocalAddr().String() {
		t.Fatalf("connect event = %+v", e)
	}
	if got := srv.OpenChannels(); !slices.Equal(got, []string{e.ChannelID}) {
		t.Fatalf("OpenChannels = %v, want [%s]", got, e.ChannelID)
	}
}

func TestTCPCleanReasons(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true})
	t.Run("client_closed", func(t *testing.T) {
		c := connectOK(t, srv.addr, "closer")
		c.nc.Close()
		e := srv.rec.waitTCPClean(t, "closer")
		if e.Reason != presence.ReasonClientClosed {
			t.Fatalf("reason %q", e.Reason)
		}
	})
	t.Run("client_closed by RST", func(t *testing.T) {
		// A reset is the peer's own close, like a FIN: network_error is
		// for failures nobody chose.
		c := connectOK(t, srv.addr, "resetter")
		if err := c.nc.(*net.TCPConn).SetLinger(0); err != nil {
			t.Fatal(err)
		}
		c.nc.Close()
		e := srv.rec.waitTCPClean(t, "resetter")
		if e.Reason != presence.ReasonClientClosed {
			t.Fatalf("reason %q after an RST, want client_closed", e.Reason)
		}
	})
	t.Run("client_disconnect", func(t *testing.T) {
		c := connectOK(t, srv.addr, "polite")
		c.send(&emptyPacket{Type: typeDisconnect})
		c.expectClosed() // [MQTT-3.14.4] the server closes after DISCONNECT
		e := srv.rec.waitTCPClean(t, "polite")
		if e.Reason != presence.ReasonClientDisconnect {
			t.Fatalf("reason %q", e.Reason)
		}
		if got := types(srv.rec.forClient("polite")); !slices.Equal(got, []presence.EventType{"connect", "disconnect", "tcpclean"}) {
			t.Fatalf("events %v", got)
		}
	})
	t.Run("protocol_error", func(t *testing.T) {
		c := connectOK(t, srv.addr, "rude")
		c.write([]byte{0xf0, 0x00}) // reserved packet type 15
		c.expectClosed()
		if e := srv.rec.waitTCPClean(t, "rude"); e.Reason != presence.ReasonProtocolError {
			t.Fatalf("reason %q", e.Reason)
		}
	})
	t.Run("server_shutdown", func(t *testing.T) {
		srv2 := startServer(t, Config{AllowAnonymous: true})
		connectOK(t, srv2.addr, "stayer")
		if err := srv2.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		// Shutdown returned: the event is already recorded.
		events := srv2.rec.forClient("stayer")
		if len(events) != 2 || events[1].Type != presence.EventTCPClean || events[1].Reason != presence.ReasonServerShutdown {
			t.Fatalf("events %v", events)
		}
		if got := srv2.OpenChannels(); len(got) != 0 {
			t.Fatalf("OpenChannels after shutdown = %v", got)
		}
	})
}

func TestKeepaliveTimeout(t *testing.T) {
	// [MQTT-3.1.2-24] nothing for 1.5 × keepalive closes the connection.
	srv := startServer(t, Config{AllowAnonymous: true})
	c := dial(t, srv.addr)
	c.connect(&connectPacket{ClientID: "sleepy", CleanSession: true, Keepalive: 1})
	// A ping within the period keeps it alive [MQTT-3.12.4-1]. The broker's
	// keepalive runs on real time (socket deadlines), so time must pass; the
	// ping goes 0.5 s in, a full second before the 1.5 s deadline.
	time.Sleep(500 * time.Millisecond)
	pinged := time.Now()
	c.send(&emptyPacket{Type: typePingreq})
	c.expect(typePingresp)
	c.expectClosed()
	// The broker reads the ping no earlier than it was sent and deadlines
	// never fire early, so a deadline the ping moved cannot end sooner than
	// this, however slow the machine; one it did not move ends ~1 s after it.
	if waited := time.Since(pinged); waited < 1500*time.Millisecond {
		t.Fatalf("closed %v after the ping, want at least 1.5 × keepalive after it", waited)
	}
	if e := srv.rec.waitTCPClean(t, "sleepy"); e.Reason != presence.ReasonKeepaliveTimeout {
		t.Fatalf("reason %q", e.Reason)
	}
	if srv.Stats().KeepaliveExpired != 1 {
		t.Fatalf("stats %+v", srv.Stats())
	}
}

func TestConnectTimeout(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true, ConnectTimeout: 100 * time.Millisecond})
	c := dial(t, srv.addr)
	c.expectClosed()
	// The socket closes before finish would emit anything: wait for finish.
	waitConnectionsFinished(t, srv)
	if got := srv.rec.snapshot(); len(got) != 0 {
		t.Fatalf("events for a connection without CONNECT: %v", got)
	}
	if srv.Stats().ConnectTimeouts != 1 {
		t.Fatalf("stats %+v", srv.Stats())
	}
}

func TestTakeover(t *testing.T) {
	// [MQTT-3.1.4-2] a second connection with the same client id closes
	// the first. The new connect is recorded before the old connection is
	// closed, and the old one's tcpclean (reason takeover) names its
	// successor, so the client is never without an open channel.
	srv := startServer(t, Config{AllowAnonymous: true})
	old := connectOK(t, srv.addr, "twin")
	connectOK(t, srv.addr, "twin")
	old.expectClosed()
	events := srv.rec.forClient("twin")
	if got := types(events); !slices.Equal(got, []presence.EventType{"connect", "connect", "tcpclean"}) {
		t.Fatalf("events %v", events)
	}
	if events[2].Reason != presence.ReasonTakeover || events[2].ChannelID != events[0].ChannelID ||
		events[1].ChannelID == events[0].ChannelID || events[2].TakeoverBy != events[1].ChannelID {
		t.Fatalf("events %v", events)
	}
	if got := srv.OpenChannels(); !slices.Equal(got, []string{events[1].ChannelID}) {
		t.Fatalf("OpenChannels = %v", got)
	}
	if srv.Stats().Takeovers != 1 {
		t.Fatalf("stats %+v", srv.Stats())
	}
}

func TestSinkErrorRefusesConnect(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true})
	srv.rec.mu.Lock()
	srv.rec.failConnect = true
	srv.rec.mu.Unlock()
	c := dial(t, srv.addr)
	if ack := c.connect(&connectPacket{ClientID: "unrecorded", CleanSession: true}); ack.ReturnCode != connRefusedUnavailable {
		t.Fatalf("CONNACK %d, want 3", ack.ReturnCode)
	}
	c.expectClosed()
	// Not a pause: once the connection is finished it can emit nothing more.
	waitConnectionsFinished(t, srv)
	if got := srv.rec.snapshot(); len(got) != 0 {
		t.Fatalf("events %v, want none", got)
	}
}

func TestConnackReturnCodes(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true})
	long := make([]byte, 129)
	for i := range long {
		long[i] = 'a'
	}
	tests := []struct {
		name string
		p    connectPacket
		want byte
	}{
		{"MQTT 3.1.1", connectPacket{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "ok1", CleanSession: true}, 0},
		{"MQTT 3.1", connectPacket{ProtocolName: "MQIsdp", ProtocolLevel: 3, ClientID: "ok2", CleanSession: true}, 0},
		{"level 6 [MQTT-3.1.2-2]", connectPacket{ProtocolName: "MQTT", ProtocolLevel: 6, ClientID: "x"}, 1},
		{"level 3 with name MQTT", connectPacket{ProtocolName: "MQTT", ProtocolLevel: 3, ClientID: "x"}, 1},
		{"bad name [MQTT-3.1.2-1]", connectPacket{ProtocolName: "MQTX", ProtocolLevel: 4, ClientID: "x"}, 1},
		{"plus in id", connectPacket{ClientID: "a+b", CleanSession: true}, 2},
		{"hash in id", connectPacket{ClientID: "a#b", CleanSession: true}, 2},
		{"control char in id", connectPacket{ClientID: "a\x01b", CleanSession: true}, 2},
		{"129-byte id", connectPacket{ClientID: string(long), CleanSession: true}, 2},
		{"empty id, persistent [MQTT-3.1.3-8]", connectPacket{ClientID: ""}, 2},
		{"empty id, clean [MQTT-3.1.3-6]", connectPacket{ClientID: "", CleanSession: true}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, srv.addr)
			ack := c.connect(&tt.p)
			if ack.ReturnCode != tt.want {
				t.Fatalf("CONNACK %d, want %d", ack.ReturnCode, tt.want)
			}
			if tt.want != 0 {
				if ack.SessionPresent { // [MQTT-3.2.2-4]
					t.Fatal("session present with a refusal")
				}
				c.expectClosed() // [MQTT-3.2.2-5]
			}
		})
	}
	// The assigned id is valid and was reported.
	var assigned bool
	for _, e := range srv.rec.snapshot() {
		if e.Type == presence.EventConnect && len(e.ClientID) > 5 && e.ClientID[:5] == "auto-" {
			assigned = true
		}
	}
	if !assigned {
		t.Fatal("no connect event with a server-assigned client id")
	}
}

func TestFirstPacketMustBeConnect(t *testing.T) {
	// [MQTT-3.1.0-1]
	srv := startServer(t, Config{AllowAnonymous: true})
	c := dial(t, srv.addr)
	c.send(&emptyPacket{Type: typePingreq})
	c.expectClosed()
	// [MQTT-3.1.0-2] a second CONNECT is a protocol violation.
	c2 := connectOK(t, srv.addr, "again")
	c2.send(&connectPacket{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "again", CleanSession: true})
	c2.expectClosed()
	if e := srv.rec.waitTCPClean(t, "again"); e.Reason != presence.ReasonProtocolError {
		t.Fatalf("reason %q", e.Reason)
	}
}

func TestAnonymousRefused(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: false})
	c := dial(t, srv.addr)
	if ack := c.connect(&connectPacket{ClientID: "anon", CleanSession: true}); ack.ReturnCode != connRefusedNotAuth {
		t.Fatalf("CONNACK %d, want 5", ack.ReturnCode)
	}
	c.expectClosed()
}

func TestPanickingSinkDoesNotCrash(t *testing.T) {
	srv := New(Config{AllowAnonymous: true, Logger: discardLogger()}, func(e presence.Event) error {
		if e.Type == presence.EventTCPClean {
			panic("sink bug")
		}
		return nil
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(t.Context())
	c := connectOK(t, ln.Addr().String(), "p1")
	c.nc.Close()
	waitUntil(t, "the sink error", func() bool { return srv.Stats().SinkErrors > 0 })
	if srv.Stats().SinkErrors != 1 {
		t.Fatalf("stats %+v", srv.Stats())
	}
	connectOK(t, ln.Addr().String(), "p2") // still serving
}

func TestDropTCPCleanHook(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true, DropTCPClean: func(e presence.Event) bool { return e.ClientID == "lost" }})
	connectOK(t, srv.addr, "lost").nc.Close()
	connectOK(t, srv.addr, "kept").nc.Close()
	srv.rec.waitTCPClean(t, "kept")
	// The drop is counted where the tcpclean would have been emitted, so
	// after the count the lost tcpclean can no longer arrive.
	waitUntil(t, "the dropped tcpclean", func() bool { return srv.Stats().EventsDropped > 0 })
	if got := types(srv.rec.forClient("lost")); !slices.Equal(got, []presence.EventType{"connect"}) {
		t.Fatalf("events of lost = %v, want only connect", got)
	}
	if n := srv.Stats().EventsDropped; n != 1 {
		t.Fatalf("EventsDropped = %d", n)
	}
}
