package mqttbroker

import (
	"net"
	"strconv"
	"sync/atomic"
	"testing"
)

// BenchmarkConnect measures connects/s of one protocol level against the
// broker alone (no event pipeline): each client dials, sends CONNECT,
// reads CONNACK, sends DISCONNECT and closes, from as many goroutines as
// -cpu × 8. Compare the levels side by side:
//
//	go test -run '^$' -bench '^BenchmarkConnect$' -benchtime 3s -count 3 ./mqttbroker
func BenchmarkConnect(b *testing.B) {
	for _, level := range []byte{4, 5} {
		b.Run("level-"+strconv.Itoa(int(level)), func(b *testing.B) {
			srv := New(Config{AllowAnonymous: true, Logger: discardLogger(), Node: "bench", Epoch: "e"}, nil)
			ln, err := Listen(b.Context(), "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go srv.Serve(ln)
			defer srv.Shutdown(b.Context())
			b.ResetTimer()
			connectCycles(b, ln.Addr().String(), level, 8)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "connects/s")
		})
	}
}

// connectCycles runs b.N channels against the broker at addr from
// parallelism × -cpu goroutines: dial, CONNECT at level, CONNACK,
// DISCONNECT, close. The clients dial from source addresses spread over
// 127.0.0.2–251 so that their TIME_WAIT sockets do not exhaust the
// ephemeral ports.
func connectCycles(b *testing.B, addr string, level byte, parallelism int) {
	var seq atomic.Int64
	b.SetParallelism(parallelism)
	b.RunParallel(func(pb *testing.PB) {
		var reader packetReader
		for pb.Next() {
			n := seq.Add(1)
			id := "bench-" + strconv.FormatInt(n, 10)
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+n%250))}}
			nc, err := d.Dial("tcp", addr)
			if err != nil {
				b.Error(err)
				return
			}
			nc.Write(encodePacket(&connectPacket{ProtocolName: "MQTT", ProtocolLevel: level, ClientID: id, CleanSession: true, Keepalive: 60}))
			first, body, err := reader.readPacket(nc, 1<<10)
			if err != nil || packetType(first>>4) != typeConnack || len(body) < 2 || body[1] != 0 {
				b.Errorf("CONNACK % x: %v", body, err)
				nc.Close()
				return
			}
			nc.Write([]byte{byte(typeDisconnect) << 4, 0})
			nc.Close()
			reader = packetReader{}
		}
	})
}
