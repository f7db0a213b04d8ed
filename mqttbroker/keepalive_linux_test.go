package mqttbroker

import (
	"syscall"
	"testing"
	"time"
)

// TCP keepalive is on exactly for the connections of clients without MQTT
// keepalive: nothing else would ever notice that such a peer vanished.
// [MQTT-3.1.2-10: keepalive 0 turns the MQTT mechanism off]
func TestTCPKeepaliveOnlyForClientsWithoutMQTTKeepalive(t *testing.T) {
	ts := startServer(t, Config{AllowAnonymous: true})
	connectAs(t, ts.addr, connectPacket{ClientID: "no-keepalive", CleanSession: true, Keepalive: 0}, false)
	connectAs(t, ts.addr, connectPacket{ClientID: "keepalive-60", CleanSession: true, Keepalive: 60}, false)

	want := map[string]int{"no-keepalive": 1, "keepalive-60": 0}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := soKeepalive(t, ts.Server)
		if len(got) == len(want) {
			for id, w := range want {
				if got[id] != w {
					t.Fatalf("SO_KEEPALIVE of %s = %d, want %d", id, got[id], w)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server connections %v, want %v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// soKeepalive reads SO_KEEPALIVE of the server side of every connected
// client's socket.
func soKeepalive(t *testing.T, s *Server) map[string]int {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for c := range s.conns {
		if !c.connected.Load() {
			continue
		}
		raw, err := c.nc.(syscall.Conn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var v int
		var serr error
		if err := raw.Control(func(fd uintptr) { v, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE) }); err != nil {
			t.Fatal(err)
		}
		if serr != nil {
			t.Fatal(serr)
		}
		out[c.clientID] = v
	}
	return out
}
