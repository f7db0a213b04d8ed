package mqttbroker

import (
	"bytes"
	"testing"
)

// TestSubscriptionsAreBoundedInAll: MaxSubscriptionsTotal bounds the
// subscriptions of all sessions together; a filter past it gets 0x80,
// re-subscribing one held is not a new one, and one given up (UNSUBSCRIBE,
// or a clean session's end) makes room again.
func TestSubscriptionsAreBoundedInAll(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true, MaxSubscriptionsTotal: 3})
	a := connectOK(t, srv.addr, "a")
	if codes := a.subscribe(1, 1, "a/1", "a/2"); !bytes.Equal(codes, []byte{1, 1}) {
		t.Fatalf("a's SUBACK %v, want both granted", codes)
	}
	b := connectOK(t, srv.addr, "b")
	if codes := b.subscribe(2, 0, "b/1", "b/2"); !bytes.Equal(codes, []byte{0, subackFailure}) {
		t.Fatalf("b's SUBACK %v, want the second past the bound refused", codes)
	}
	if codes := a.subscribe(3, 0, "a/1"); !bytes.Equal(codes, []byte{0}) {
		t.Fatalf("re-subscribing a held filter: %v, want granted", codes)
	}
	if got := srv.Stats().Subscriptions; got != 3 {
		t.Fatalf("%d subscriptions counted, want 3", got)
	}
	a.send(&unsubscribePacket{ID: 4, Filters: []string{"a/2"}})
	a.expect(typeUnsuback)
	if codes := b.subscribe(5, 0, "b/2"); !bytes.Equal(codes, []byte{0}) {
		t.Fatalf("after an UNSUBSCRIBE: %v, want granted", codes)
	}
	a.nc.Close() // a clean session: its subscriptions go with it
	srv.rec.waitTCPClean(t, "a")
	waitUntil(t, "a's subscription given up", func() bool { return srv.Stats().Subscriptions == 2 })
	if codes := b.subscribe(6, 0, "b/3"); !bytes.Equal(codes, []byte{0}) {
		t.Fatalf("after a clean session ended: %v, want granted", codes)
	}
}
