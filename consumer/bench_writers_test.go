package consumer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/consumer"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// memLog is a Source over entries in memory: the pump's own cost without
// the outbox's disk.
type memLog struct {
	mu      sync.Mutex
	entries []consumer.Entry
	next    int
}

func (l *memLog) Read(ctx context.Context, max int) ([]consumer.Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.next == len(l.entries) {
		l.mu.Unlock()
		<-ctx.Done()
		l.mu.Lock()
		return nil, ctx.Err()
	}
	n := min(max, len(l.entries)-l.next)
	out := l.entries[l.next : l.next+n]
	l.next += n
	return out, nil
}

func (l *memLog) Ack(uint64) error { return nil }

// BenchmarkPumpWriters drains 40,000 events (connect and tcpclean of
// 20,000 new channels) through the Pump with 1, 2 and 4 writers and
// batches of 1,000 (serve's --batch-size default): what --store-writers
// gives the serve path from its log to the store.
func BenchmarkPumpWriters(b *testing.B) {
	const events = 40_000
	for _, writers := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			store := pgtest.NewStore(b)
			apply := func(ctx context.Context, events []presence.Event) ([]presence.StoredEvent, error) {
				r, err := store.Apply(ctx, events)
				return r.Applied, err
			}
			round := 0
			for b.Loop() {
				b.StopTimer()
				log := &memLog{}
				for i := range events / 2 {
					id := round*events + i
					for _, typ := range []presence.EventType{presence.EventConnect, presence.EventTCPClean} {
						e := presence.Event{ClientID: fmt.Sprintf("GID_bench@@@device-%d", id%100_000), ChannelID: fmt.Sprintf("%032x", id),
							Type: typ, Time: time.Now().UnixMilli(), ClientIP: "127.0.0.1:1"}
						payload, _ := json.Marshal(e)
						log.entries = append(log.entries, consumer.Entry{Seq: uint64(len(log.entries) + 1), Payload: payload})
					}
				}
				round++
				pump := &consumer.Pump{Source: log, Applier: consumer.NewApplier(apply, nil, nil, nil), Writers: writers, BatchSize: 1000}
				b.StartTimer()
				pump.Drain()
				if err := pump.Run(context.Background()); err != nil {
					b.Fatal(err)
				}
				if got := pump.Applier.Stats.Applied.Load(); got != events {
					b.Fatalf("%d events stored, want %d", got, events)
				}
			}
			b.ReportMetric(float64(b.N*events)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
