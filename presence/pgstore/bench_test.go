package pgstore_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// BenchmarkApply applies batches of 500 new events: 250 channels of 250
// clients, each with connect and tcpclean, as a busy broker would produce.
// Against the test cluster (pgtest: fsync off) unless
// PRESENCE_TEST_DATABASE_URL points at a durable server.
func BenchmarkApply(b *testing.B) {
	s := pgtest.NewStore(b)
	const batchSize = 500
	batch := make([]presence.Event, batchSize)
	n := 0
	b.ResetTimer()
	for b.Loop() {
		for i := 0; i < batchSize; i += 2 {
			client := fmt.Sprintf("GID_bench@@@device-%d", n%100_000)
			ch := fmt.Sprintf("%032x", n)
			batch[i] = ev(client, ch, presence.EventConnect, int64(n))
			batch[i+1] = ev(client, ch, presence.EventTCPClean, int64(n)+1000)
			n++
		}
		res, err := s.Apply(ctx, batch)
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Applied) != batchSize {
			b.Fatalf("%d applied, want %d", len(res.Applied), batchSize)
		}
	}
	b.ReportMetric(float64(b.N*batchSize)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkOnline looks up clients among 20 000 with a few channels each.
func BenchmarkOnline(b *testing.B) {
	s := pgtest.NewStore(b)
	const clients = 20_000
	var batch []presence.Event
	for i := range clients * 3 {
		client := fmt.Sprintf("GID_bench@@@device-%d", i%clients)
		ch := fmt.Sprintf("%032x", i)
		batch = append(batch, ev(client, ch, presence.EventConnect, int64(i)))
		if i < clients*2 { // the first two channels of every client are closed
			batch = append(batch, ev(client, ch, presence.EventTCPClean, int64(i)+1))
		}
		if len(batch) >= 1000 {
			mustApply(b, s, batch...)
			batch = batch[:0]
		}
	}
	mustApply(b, s, batch...)
	if _, err := s.Pool().Exec(ctx, "ANALYZE"); err != nil {
		b.Fatal(err)
	}
	i := 0
	b.ResetTimer()
	for b.Loop() {
		st, err := s.Online(ctx, fmt.Sprintf("GID_bench@@@device-%d", i%clients))
		if err != nil || !st.Online {
			b.Fatalf("Online = %+v, %v", st, err)
		}
		i += 7919
	}
}

// BenchmarkApplyChurn applies what a RocketMQ drain hands the store: batches
// of ~1,150 events of channels with random 128-bit ids (as the broker makes
// them), each with connect, disconnect and tcpclean in the same batch.
func BenchmarkApplyChurn(b *testing.B) {
	s := pgtest.NewStore(b)
	const channelsPerBatch = 384
	rng := rand.New(rand.NewPCG(1, 2))
	batch := make([]presence.Event, 0, 3*channelsPerBatch)
	n := 0
	b.ResetTimer()
	for b.Loop() {
		batch = batch[:0]
		for range channelsPerBatch {
			client := fmt.Sprintf("GID_bench@@@device-%d", n%100_000)
			ch := fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64())
			batch = append(batch,
				ev(client, ch, presence.EventConnect, int64(n)),
				ev(client, ch, presence.EventDisconnect, int64(n)+5),
				ev(client, ch, presence.EventTCPClean, int64(n)+6))
			n++
		}
		if _, err := s.Apply(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "events/s")
}
