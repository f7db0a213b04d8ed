package mqttbroker

import "testing"

// TestWillsAreBoundedInAll: the wills of connected clients are held until
// their connections end; MaxWillBytesTotal bounds them together. A CONNECT
// whose will would pass it is refused (0x03), and a will gives its bytes
// back once discarded by DISCONNECT or published.
func TestWillsAreBoundedInAll(t *testing.T) {
	const packetSize = 16 << 10
	srv := startServer(t, Config{AllowAnonymous: true, MaxPacketSize: packetSize, MaxWillBytesTotal: 2 * packetSize})
	withWill := func(clientID string, size int) connectPacket {
		return connectPacket{ClientID: clientID, CleanSession: true, Will: &willMessage{Topic: "will/" + clientID, Payload: make([]byte, size)}}
	}
	a := connectAs(t, srv.addr, withWill("a", 16000), false)
	b := connectAs(t, srv.addr, withWill("b", 16000), false)
	held := 2 * willSize(&willMessage{Topic: "will/a", Payload: make([]byte, 16000)})
	if got := srv.Stats().WillBytes; got != held {
		t.Fatalf("%d bytes of wills held, want %d", got, held)
	}
	c := dial(t, srv.addr)
	small := withWill("c", 1000)
	if ack := c.connect(&small); ack.ReturnCode != connRefusedUnavailable {
		t.Fatalf("CONNACK %d for a will past the budget, want %d", ack.ReturnCode, connRefusedUnavailable)
	}
	if st := srv.Stats(); st.WillsRefused != 1 || st.WillBytes != held {
		t.Fatalf("refused %d, held %d; want 1 and %d", st.WillsRefused, st.WillBytes, held)
	}
	// DISCONNECT discards a's will [MQTT-3.14.4-3]; b's is published when
	// its connection breaks. Either way the bytes come back.
	a.send(&emptyPacket{Type: typeDisconnect})
	srv.rec.waitTCPClean(t, "a")
	b.nc.Close()
	srv.rec.waitTCPClean(t, "b")
	waitUntil(t, "the wills' bytes given back", func() bool { return srv.Stats().WillBytes == 0 })
	if srv.Stats().WillsPublished != 1 {
		t.Fatalf("%d wills published, want b's", srv.Stats().WillsPublished)
	}
	connectAs(t, srv.addr, withWill("c", 1000), false)
}
