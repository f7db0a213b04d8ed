package mqttbroker

import (
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

// TestHalfSentPacketTimesOutWithoutKeepalive: a client with keepalive 0
// that sends part of a packet and then nothing is closed after
// PacketTimeout (protocol_error); one that is merely idle between packets
// is not, however long it idles.
func TestHalfSentPacketTimesOutWithoutKeepalive(t *testing.T) {
	const timeout = 300 * time.Millisecond
	srv := startServer(t, Config{AllowAnonymous: true, PacketTimeout: timeout})
	idle := connectOK(t, srv.addr, "idle") // keepalive 0, and nothing more to say
	for _, tc := range []struct {
		name string
		size int
	}{{"small", 100}, {"large", 16 << 10}} { // within a read buffer, and not
		stalled := connectOK(t, srv.addr, "stalled-"+tc.name)
		publish := encodePacket(&publishPacket{Topic: "t", Payload: make([]byte, tc.size)})
		sent := time.Now()
		stalled.write(publish[:len(publish)/2])
		stalled.expectClosed()
		if took := time.Since(sent); took < timeout {
			t.Fatalf("%s: closed %v after half a packet, before the timeout of %v", tc.name, took, timeout)
		}
		if got := srv.rec.waitTCPClean(t, "stalled-"+tc.name).Reason; got != presence.ReasonProtocolError {
			t.Fatalf("%s: tcpclean reason %q, want %q", tc.name, got, presence.ReasonProtocolError)
		}
	}
	// The idle client waited longer than the timeout twice over, and is
	// still served.
	if codes := idle.subscribe(1, 0, "still/here"); len(codes) != 1 || codes[0] != 0 {
		t.Fatalf("idle client's SUBACK %v", codes)
	}
}
