package mqttbroker

import (
	"testing"

	"github.com/presenced/presenced/presence"
)

func TestWillMessage(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true})
	watcher := connectOK(t, srv.addr, "watcher")
	watcher.subscribe(1, 2, "will/#")
	watcher.retainBarrier()
	will := func(id string) connectPacket {
		return connectPacket{ClientID: id, CleanSession: true, Keepalive: 1,
			Will: &willMessage{Topic: "will/" + id, Payload: []byte("gone"), QoS: 1}}
	}
	tests := []struct {
		name    string
		end     func(c *rawClient, id string)
		reason  presence.Reason
		publish bool
	}{
		{"socket closed", func(c *rawClient, _ string) { c.nc.Close() }, presence.ReasonClientClosed, true},
		{"protocol error", func(c *rawClient, _ string) { c.write([]byte{0x36, 3, 0, 1, 't'}) }, presence.ReasonProtocolError, true},
		{"keepalive", func(*rawClient, string) {}, presence.ReasonKeepaliveTimeout, true},
		{"takeover", func(*rawClient, string) { connectOK(t, srv.addr, "takeover") }, presence.ReasonTakeover, true},
		{"disconnect", func(c *rawClient, _ string) { c.send(&emptyPacket{Type: typeDisconnect}) }, presence.ReasonClientDisconnect, false},
		// An operator's kick publishes the will, unless told not to (AWS's
		// preventWillMessage); Kick returns once the tcpclean is emitted.
		{"kick", func(_ *rawClient, id string) { kick(t, srv.Server, id, false) }, presence.ReasonAPIDisconnect, true},
		{"kick discarding the will", func(_ *rawClient, id string) { kick(t, srv.Server, id, true) }, presence.ReasonAPIDisconnect, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := map[string]string{"takeover": "takeover", "kick": "kicked", "kick discarding the will": "kicked-quiet"}[tt.name]
			if id == "" {
				id = "w-" + string(tt.reason)
			}
			c := connectAs(t, srv.addr, will(id), false)
			tt.end(c, id)
			if e := srv.rec.waitTCPClean(t, id); e.Reason != tt.reason {
				t.Fatalf("reason %q, want %q", e.Reason, tt.reason)
			}
			if !tt.publish {
				// [MQTT-3.14.4-3] DISCONNECT discards the will (and so
				// does a kick that says so). finish
				// publishes a will before it emits tcpclean, so it would
				// come before the barrier.
				watcher.barrier(1)
				return
			}
			// [MQTT-3.1.2-8] published with its QoS.
			p := watcher.receive(true)
			if p.Topic != "will/"+id || string(p.Payload) != "gone" || p.QoS != 1 || p.Retain {
				t.Fatalf("will %+v", p)
			}
		})
	}
}

func TestRetainedWill(t *testing.T) {
	// [MQTT-3.1.2-17] a will with retain set is published as retained.
	srv := startServer(t, Config{AllowAnonymous: true})
	c := connectAs(t, srv.addr, connectPacket{ClientID: "rw", CleanSession: true,
		Will: &willMessage{Topic: "status/rw", Payload: []byte("offline"), Retain: true}}, false)
	c.nc.Close()
	srv.rec.waitTCPClean(t, "rw")
	later := connectOK(t, srv.addr, "later")
	later.subscribe(1, 1, "status/+")
	if p := later.receive(true); !p.Retain || string(p.Payload) != "offline" {
		t.Fatalf("got %+v", p)
	}
}

// kick closes id's connection through Server.Kick and checks it was held.
func kick(t *testing.T, srv *Server, id string, discardWill bool) {
	t.Helper()
	channel, ok, err := srv.Kick(t.Context(), id, discardWill)
	if err != nil || !ok || len(channel) != 32 {
		t.Fatalf("Kick(%s) = %q, %v, %v", id, channel, ok, err)
	}
	if srv.Stats().Kicked == 0 {
		t.Fatal("Kicked not counted")
	}
}

func TestKickUnknownClient(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true})
	if channel, ok, err := srv.Kick(t.Context(), "nobody", false); ok || err != nil || channel != "" {
		t.Fatalf("Kick of an unknown client = %q, %v, %v", channel, ok, err)
	}
	// A persistent session without a connection is not kicked either.
	c := connectAs(t, srv.addr, connectPacket{ClientID: "away", CleanSession: false}, false)
	c.nc.Close()
	srv.rec.waitTCPClean(t, "away")
	if _, ok, _ := srv.Kick(t.Context(), "away", false); ok {
		t.Fatal("kicked a session with no connection")
	}
}
