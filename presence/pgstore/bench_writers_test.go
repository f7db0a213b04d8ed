package pgstore_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// BenchmarkApplyConcurrentWriters applies b.N batches of 500 new events
// (250 channels, each with connect and tcpclean, as BenchmarkApply) from
// 1, 2 and 4 goroutines at once, each Apply its own transaction: the
// store's write rate by number of writers (--store-writers). Against the
// test cluster (pgtest: fsync off) unless PRESENCE_TEST_DATABASE_URL points
// at a durable server.
func BenchmarkApplyConcurrentWriters(b *testing.B) {
	const batchSize = 500
	for _, writers := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s := pgtest.NewStore(b)
			var next atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			b.ResetTimer()
			for range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					batch := make([]presence.Event, batchSize)
					for {
						n := int(next.Add(1))
						if n > b.N {
							return
						}
						for i := 0; i < batchSize; i += 2 {
							id := n*batchSize + i
							client := fmt.Sprintf("GID_bench@@@device-%d", id%100_000)
							ch := fmt.Sprintf("%032x", id)
							batch[i] = ev(client, ch, presence.EventConnect, int64(id))
							batch[i+1] = ev(client, ch, presence.EventTCPClean, int64(id)+1000)
						}
						res, err := s.Apply(ctx, batch)
						if err == nil && len(res.Applied) != batchSize {
							err = fmt.Errorf("%d applied, want %d", len(res.Applied), batchSize)
						}
						if err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N*batchSize)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(s.WriteConflicts()), "retries")
		})
	}
}
