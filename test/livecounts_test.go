package test

import (
	"encoding/binary"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// subscribePacket builds a SUBSCRIBE (packet id 1) of filters at qos.
func subscribePacket(qos byte, filters ...string) []byte {
	body := binary.BigEndian.AppendUint16(nil, 1)
	for _, f := range filters {
		body = append(appendString(body, f), qos)
	}
	pkt := appendRemainingLength([]byte{0x82}, len(body))
	return append(pkt, body...)
}

// TestLiveSessionCounts: in serve mode the open channel of
// GET /clients/{id}/channels carries what the client's session holds now.
// A raw subscriber with two QoS 1 subscriptions that never acknowledges
// holds every message published to it, in flight up to the window and
// queued beyond it; a closed channel carries no counts.
func TestLiveSessionCounts(t *testing.T) {
	p := startServe(t, pgtest.URL(t))
	const id, published = "GID_live@@@sub", 40
	sub, code := rawConnect(t, p.MQTTAddr, id, 60)
	if code != 0 {
		t.Fatalf("CONNACK %d", code)
	}
	mustWrite(t, sub, subscribePacket(1, "live/a", "live/b"))
	_ = sub.SetReadDeadline(time.Now().Add(10 * time.Second))
	suback := make([]byte, 6) // 90 04, id, 2 granted QoS
	if _, err := io.ReadFull(sub, suback); err != nil || suback[0] != 0x90 || suback[4] != 1 || suback[5] != 1 {
		t.Fatalf("SUBACK % x: %v", suback, err)
	}
	_ = sub.SetReadDeadline(time.Time{})
	p.waitOnline(id, true, 5*time.Second)

	pub := pahoConnect(t, p.MQTTAddr, "GID_live@@@pub", 30*time.Second)
	for i := range published {
		if tok := pub.Publish("live/a", 1, false, fmt.Sprint("m", i)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}
	ch := waitChannel(t, p.HTTPAddr, id, "live counts of every message held", func(cs []presence.Channel) *presence.Channel {
		for i := range cs {
			if l := cs[i].Live; cs[i].Open && l != nil && l.InFlight+l.Queued == published {
				return &cs[i]
			}
		}
		return nil
	})
	if l := ch.Live; l.Subscriptions != 2 || l.InFlight == 0 || l.Queued == 0 {
		t.Fatalf("live counts %+v: want 2 subscriptions and %d messages split between in flight (the window) and queued", *l, published)
	}

	abortClose(sub)
	closed := waitChannel(t, p.HTTPAddr, id, "the channel closed", func(cs []presence.Channel) *presence.Channel {
		for i := range cs {
			if cs[i].ChannelID == ch.ChannelID && !cs[i].Open {
				return &cs[i]
			}
		}
		return nil
	})
	if closed.Live != nil {
		t.Fatalf("closed channel carries live counts %+v", *closed.Live)
	}
}
