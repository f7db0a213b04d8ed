package mqttbroker

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// BenchmarkPublishThroughput measures messages routed from one publisher
// to one subscriber at each QoS, pipelined over raw sockets.
func BenchmarkPublishThroughput(b *testing.B) {
	for qos := byte(0); qos <= 1; qos++ {
		b.Run(fmt.Sprintf("qos%d", qos), func(b *testing.B) {
			srv := New(Config{AllowAnonymous: true, Logger: discardLogger(), Node: "bench", Epoch: "e",
				InflightWindow: 1000, MaxQueuedMessages: 1 << 20}, nil)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go srv.Serve(ln)
			defer srv.Shutdown(b.Context())
			t := &testing.T{}
			sub := &rawClient{t: t, nc: mustDial(b, ln.Addr().String())}
			sub.connect(&connectPacket{ClientID: "sub", CleanSession: true})
			sub.subscribe(1, qos, "bench/#")
			pub := &rawClient{t: t, nc: mustDial(b, ln.Addr().String())}
			pub.connect(&connectPacket{ClientID: "pub", CleanSession: true})
			msg := encodePacket(&publishPacket{Topic: "bench/x", QoS: qos, ID: 1, Payload: make([]byte, 64)})
			go func() { // the publisher's acks are read and dropped
				buf := make([]byte, 64<<10)
				for {
					if _, err := pub.nc.Read(buf); err != nil {
						return
					}
				}
			}()
			b.ResetTimer()
			go func() {
				batch := make([]byte, 0, 100*len(msg))
				for i := 0; i < b.N; i += 100 {
					batch = batch[:0]
					for j := i; j < min(i+100, b.N); j++ {
						batch = append(batch, msg...)
					}
					pub.nc.Write(batch)
				}
			}()
			for range b.N {
				p, err := sub.next(10 * time.Second)
				if err != nil {
					b.Fatal(err)
				}
				if pp, ok := p.(*publishPacket); ok && pp.QoS == 1 {
					sub.nc.Write(encodePacket(&ackPacket{Type: typePuback, ID: pp.ID}))
				}
			}
		})
	}
}

func mustDial(b *testing.B, addr string) net.Conn {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nc.Close() })
	return nc
}
