package outbox

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/presenced/presenced/presence"
)

// BenchmarkAppendParallel measures durable appends with many concurrent
// appenders, as a broker with many connecting clients produces them. Each
// op is one Append that returned after its fsync.
func BenchmarkAppendParallel(b *testing.B) {
	for _, perProc := range []int{8, 128} { // × GOMAXPROCS goroutines
		b.Run(fmt.Sprintf("appenders=%d", perProc*runtime.GOMAXPROCS(0)), func(b *testing.B) {
			benchAppendParallel(b, Options{}, perProc)
		})
	}
}

// benchAppendParallel appends connects and tcpcleans from perProc ×
// GOMAXPROCS goroutines and reports appends per second and per fsync.
func benchAppendParallel(b *testing.B, opts Options, perProc int) {
	o := openOutbox(b, b.TempDir(), opts)
	var n atomic.Int64
	b.SetParallelism(perProc)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			i := int(n.Add(1))
			typ := presence.EventConnect
			if i%2 == 0 {
				typ = presence.EventTCPClean
			}
			if err := o.Append(ctx, testEvent(typ, i)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	st := o.Stats()
	b.ReportMetric(float64(st.Appends)/b.Elapsed().Seconds(), "appends/s")
	b.ReportMetric(float64(st.Appends)/float64(max(st.Fsyncs, 1)), "appends/fsync")
}

// BenchmarkAppendSerial is one appender at a time: the latency of one
// fdatasync per Append.
func BenchmarkAppendSerial(b *testing.B) {
	o := openOutbox(b, b.TempDir(), Options{})
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		if err := o.Append(ctx, testEvent(presence.EventConnect, i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendParallelDiskReserve is BenchmarkAppendParallel with the
// free-space reserve on: what the guard costs on the hot path.
func BenchmarkAppendParallelDiskReserve(b *testing.B) {
	benchAppendParallel(b, Options{MinFreeBytes: 1 << 20}, 128)
}
