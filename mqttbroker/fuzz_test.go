package mqttbroker

import (
	"bytes"
	"context"
	"io"
	"net"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

// FuzzDecodePacket: no input crashes the reader or the decoder, and every
// packet accepted encodes back to bytes that decode to the same packet.
// Seeds: the fixtures, plus testdata/fuzz/FuzzDecodePacket.
func FuzzDecodePacket(f *testing.F) {
	for _, fx := range packetFixtures {
		f.Add(fx.wire)
	}
	for _, fx := range malformedFixtures {
		f.Add(fx.wire)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var pr packetReader
		src := bytes.NewReader(data)
		for {
			first, body, err := pr.readPacket(src, 1<<16)
			if err != nil {
				return
			}
			p, err := decodePacket(first, body)
			if err != nil {
				continue
			}
			wire := encodePacket(p)
			var again packetReader
			first2, body2, err := again.readPacket(bytes.NewReader(wire), 1<<20)
			if err != nil {
				t.Fatalf("re-reading %v: %v", p, err)
			}
			p2, err := decodePacket(first2, body2)
			if err != nil {
				t.Fatalf("re-decoding %v (% x): %v", p, wire, err)
			}
			if !reflect.DeepEqual(p, p2) {
				t.Fatalf("round trip changed %#v into %#v", p, p2)
			}
		}
	})
}

// pipeConn is one end of net.Pipe with a TCP remote address, as the
// broker reports it in events.
type pipeConn struct{ net.Conn }

func (pipeConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 40000}
}

// FuzzConnectSession feeds a byte stream to a fresh connection of a real
// server, starting with a valid CONNECT half of the time: nothing crashes,
// and the events of the channel are exactly connect [disconnect] tcpclean,
// or nothing at all.
func FuzzConnectSession(f *testing.F) {
	connect := encodePacket(&connectPacket{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "fuzz", CleanSession: true,
		Will: &willMessage{Topic: "w", Payload: []byte("x"), QoS: 1}})
	f.Add(true, []byte{})
	for _, fx := range packetFixtures {
		f.Add(true, fx.wire)
		f.Add(false, fx.wire)
	}
	for _, fx := range malformedFixtures {
		f.Add(true, fx.wire)
	}
	f.Add(true, encodePacket(&subscribePacket{ID: 1, Subscriptions: []subscription{{Filter: "#", QoS: 2}}}))
	// MQTT 5.0 sessions: a v5 CONNECT in the data, then v5 packets.
	connect5 := encodePacket(&connectPacket{ProtocolName: "MQTT", ProtocolLevel: 5, ClientID: "fuzz5", CleanSession: true,
		Will: &willMessage{Topic: "w", Payload: []byte("x"), QoS: 1}})
	for _, fx := range v5PacketFixtures {
		f.Add(false, append(slices.Clip(connect5), fx.wire...))
	}
	for _, fx := range v5MalformedFixtures {
		f.Add(false, append(slices.Clip(connect5), fx.wire...))
	}
	f.Fuzz(func(t *testing.T, withConnect bool, data []byte) {
		rec := newRecorder()
		srv := New(Config{AllowAnonymous: true, Logger: discardLogger(), SessionExpiry: -1,
			ConnectTimeout: time.Second, Node: "n", Epoch: "e"}, rec.sink)
		client, server := net.Pipe()
		srv.startConn(pipeConn{server})
		go io.Copy(io.Discard, client)
		if withConnect {
			client.Write(connect)
		}
		client.Write(data)
		client.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// Shutdown waits until the connection is finished.
		deadline := time.Now().Add(5 * time.Second)
		for srv.Stats().Connections > 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		got := types(rec.snapshot())
		switch {
		case len(got) == 0:
		case reflect.DeepEqual(got, []presence.EventType{"connect", "tcpclean"}):
		case reflect.DeepEqual(got, []presence.EventType{"connect", "disconnect", "tcpclean"}):
		default:
			t.Fatalf("events %v", got)
		}
	})
}
