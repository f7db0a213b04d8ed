package mqttbroker

import (
	"testing"

	"github.com/presenced/presenced/presence"
)

// TestInboundBudgetBoundsHalfSentPackets: clients that send the start of a
// large packet and then nothing hold what they sent; summed over all
// connections that is bounded by MaxInboundBytesTotal. The connection whose
// packet would pass it is closed as a slow consumer, and everything taken
// is given back once packets complete or connections end.
func TestInboundBudgetBoundsHalfSentPackets(t *testing.T) {
	const packetSize = 16 << 10
	srv := startServer(t, Config{AllowAnonymous: true, MaxPacketSize: packetSize, MaxInboundBytesTotal: 2 * packetSize})
	publish := encodePacket(&publishPacket{Topic: "big", Payload: make([]byte, packetSize-64)})
	half := publish[:10<<10]
	body := int64(len(publish) - 1 - remainingLengthSize(len(publish)-3)) // a 2-byte Remaining Length

	holders := []*rawClient{connectOK(t, srv.addr, "holder-1"), connectOK(t, srv.addr, "holder-2")}
	for _, c := range holders {
		c.write(half)
	}
	// Each holds its body grown to its full size: all but a few bytes of
	// the budget.
	waitUntil(t, "the budget taken by two half-sent packets", func() bool { return srv.Stats().InboundBytes == 2*body })

	third := connectOK(t, srv.addr, "third")
	third.write(half)
	third.expectClosed()
	if got := srv.rec.waitTCPClean(t, "third").Reason; got != presence.ReasonSlowConsumer {
		t.Fatalf("tcpclean reason %q, want %q", got, presence.ReasonSlowConsumer)
	}
	if st := srv.Stats(); st.InboundRefused != 1 || st.InboundBytes != 2*body {
		t.Fatalf("refused %d, held %d bytes; want 1 and %d", st.InboundRefused, st.InboundBytes, 2*body)
	}

	// A packet completed gives its bytes back once handled; so does a
	// connection that ends holding one.
	holders[0].write(publish[len(half):])
	holders[0].subscribe(1, 0, "after") // its SUBACK comes once the PUBLISH before it was handled
	holders[1].nc.Close()
	srv.rec.waitTCPClean(t, "holder-2")
	waitUntil(t, "the budget given back", func() bool { return srv.Stats().InboundBytes == 0 })

	// With the budget free, the next large packet is read.
	next := connectOK(t, srv.addr, "next")
	next.write(publish)
	next.subscribe(1, 0, "after")
	if st := srv.Stats(); st.InboundRefused != 1 {
		t.Fatalf("refused %d after the budget was free, want 1", st.InboundRefused)
	}
}
