package mqttbroker

import (
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/presenced/presenced/mqttbroker/persist"
)

// BenchmarkPersistentQoS1Publish measures QoS 1 PUBLISH → PUBACK round
// trips of publishers whose messages are queued for an offline persistent
// session, in memory only and with persistence (PUBACK after fdatasync;
// concurrent publishers share group commits).
func BenchmarkPersistentQoS1Publish(b *testing.B) {
	for _, persisted := range []bool{false, true} {
		for _, publishers := range []int{1, 32} {
			b.Run(fmt.Sprintf("persisted=%t/publishers=%d", persisted, publishers), func(b *testing.B) {
				cfg := Config{AllowAnonymous: true, Logger: discardLogger(), Node: "bench", Epoch: "e"}
				if persisted {
					store, state, err := persist.Open(b.TempDir(), persist.Options{Log: discardLogger()})
					if err != nil {
						b.Fatal(err)
					}
					defer store.Close()
					cfg.Persistence, cfg.Persisted = store, state
				}
				srv := New(cfg, nil)
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				go srv.Serve(ln)
				defer srv.Shutdown(b.Context())
				t := &testing.T{}
				sub := &rawClient{t: t, nc: mustDial(b, ln.Addr().String())}
				sub.connect(&connectPacket{ClientID: "offline", Keepalive: 60})
				sub.subscribe(1, 1, "bench/#")
				sub.nc.Close()
				pubs := make([]*rawClient, publishers)
				for i := range pubs {
					pubs[i] = &rawClient{t: t, nc: mustDial(b, ln.Addr().String())}
					pubs[i].connect(&connectPacket{ClientID: fmt.Sprintf("pub-%d", i), CleanSession: true})
				}
				msg := encodePacket(&publishPacket{Topic: "bench/x", QoS: 1, ID: 1, Payload: make([]byte, 64)})
				b.ResetTimer()
				var wg sync.WaitGroup
				for i, pub := range pubs {
					n := b.N / publishers
					if i < b.N%publishers {
						n++
					}
					wg.Go(func() {
						for range n {
							pub.nc.Write(msg)
							if _, err := pub.next(10e9); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}
