package mqttbroker

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presenced/presenced/consumer/outbox"
	"github.com/presenced/presenced/presence"
)

// BenchmarkConnectDurable is BenchmarkConnect (3.1.1) with serve's event
// pipeline in front of a real outbox: every event is numbered, counted
// and appended, each Append waiting for its group's fdatasync, as the
// storm of issue 15 has it. Each op is one whole channel: dial, CONNECT,
// CONNACK (after the connect is durable), DISCONNECT, close — and the
// broker's disconnect and tcpclean. Run it with -benchmem for the
// allocations per channel (client side included, the same in every
// build), or with -cpuprofile to see where the broker's CPU goes:
//
//	go test -run '^$' -bench '^BenchmarkConnectDurable$' -benchmem -benchtime 5000x -count 3 ./mqttbroker
func BenchmarkConnectDurable(b *testing.B) {
	box, err := outbox.Open(b.TempDir(), outbox.Options{Log: discardLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer box.Close()
	// As serve wires it: NodeReporter.Stamp, then countEmitted, then
	// outboxWriter.event, each taking the event by value.
	var seq, emitted atomic.Uint64
	write := func(e presence.Event) error { return box.Append(context.Background(), e) }
	count := func(e presence.Event) error {
		err := write(e)
		if err == nil {
			emitted.Add(1)
		}
		return err
	}
	sink := func(e presence.Event) error {
		e.NodeSeq = seq.Add(1)
		return count(e)
	}
	srv := New(Config{AllowAnonymous: true, Logger: discardLogger(), Node: "bench", Epoch: "e"}, sink)
	ln, err := Listen(b.Context(), "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	b.ReportAllocs()
	b.ResetTimer()
	connectCycles(b, ln.Addr().String(), 4, 25) // 50 clients at a time on 2 cores, as the storm
	// The broker closes the channels the clients closed: until their
	// tcpcleans are durable, the op is not over.
	for deadline := time.Now().Add(10 * time.Second); box.Stats().Appends < uint64(3*b.N) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	srv.Shutdown(context.Background())
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "connects/s")
	if got := box.Stats().Appends; got != uint64(3*b.N) {
		b.Errorf("%d events appended, want %d", got, 3*b.N)
	}
}
