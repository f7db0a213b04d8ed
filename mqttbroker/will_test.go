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
		end     func(c *rawClient)
		reason  presence.Reason
		publish bool
	}{
		{"socket closed", func(c *rawClient) { c.nc.Close() }, presence.ReasonClientClosed, true},
		{"protocol error", func(c *rawClient) { c.write([]byte{0x36, 3, 0, 1, 't'}) }, presence.ReasonProtocolError, true},
		{"keepalive", func(c *rawClient) {}, presence.ReasonKeepaliveTimeout, true},
		{"takeover", func(c *rawClient) { connectOK(t, srv.addr, "takeover") }, presence.ReasonTakeover, true},
		{"disconnect", func(c *rawClient) { c.send(&emptyPacket{Type: typeDisconnect}) }, presence.ReasonClientDisconnect, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := map[string]string{"takeover": "takeover"}[tt.name]
			if id == "" {
				id = "w-" + string(tt.reason)
			}
			c := connectAs(t, srv.addr, will(id), false)
			tt.end(c)
			if e := srv.rec.waitTCPClean(t, id); e.Reason != tt.reason {
				t.Fatalf("reason %q, want %q", e.Reason, tt.reason)
			}
			if !tt.publish {
				// [MQTT-3.14.4-3] DISCONNECT discards the will. finish
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
