package persist

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkAppend measures durable appends (Append returns after
// fdatasync) of a 100-byte queued message: from one caller (one fsync
// each) and from many at once (group commit).
func BenchmarkAppend(b *testing.B) {
	payload := make([]byte, 100)
	for _, callers := range []int{1, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			s, _ := openStore(b, b.TempDir(), Options{})
			defer s.Close()
			mustAppend(b, s, PutSession(SessionInfo{ClientID: "dev"}))
			var n atomic.Int64
			b.SetParallelism(max(1, callers/2)) // GOMAXPROCS is 2 here
			b.ResetTimer()
			if callers == 1 {
				for range b.N {
					mustAppend(b, s, Enqueue("dev", Message{Topic: "t", Payload: payload, QoS: 1}), Dequeue("dev"))
				}
			} else {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := s.Append(Enqueue("dev", Message{Topic: "t", Payload: payload, QoS: 1}), Dequeue("dev")); err != nil {
							b.Error(err)
							return
						}
						n.Add(1)
					}
				})
			}
			b.StopTimer()
			st := s.Stats()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
			b.ReportMetric(float64(st.Records)/float64(st.Fsyncs), "records/fsync")
		})
	}
}

// BenchmarkOpen measures Open of 100,000 retained messages (100-byte
// payloads) and 10,000 persistent sessions (2 subscriptions, 5 queued
// and 2 in-flight messages each): from the journal alone, and from a
// snapshot.
func BenchmarkOpen(b *testing.B) {
	journalDir := b.TempDir()
	s, _ := openStore(b, journalDir, Options{CompactBytes: 1 << 40, MaxBytes: 1 << 42})
	payload := make([]byte, 100)
	var ops []Op
	flush := func() {
		if _, err := s.Stage(ops...); err != nil {
			b.Fatal(err)
		}
		ops = ops[:0]
	}
	for i := range 100_000 {
		ops = append(ops, SetRetained(Message{Topic: fmt.Sprintf("site/%d/sensor/%d", i/100, i%100), Payload: payload, QoS: 1}))
		if len(ops) == 1000 {
			flush()
		}
	}
	for i := range 10_000 {
		id := fmt.Sprintf("GID_demo@@@device-%d", i)
		ops = append(ops, PutSession(SessionInfo{ClientID: id, ExpiryInterval: 86400}),
			Subscribe(id, "cmd/"+id+"/#", Subscription{Options: 1}), Subscribe(id, "broadcast/+", Subscription{Options: 2}))
		for q := range 7 {
			ops = append(ops, Enqueue(id, Message{Topic: "cmd/" + id + "/x", Payload: payload, QoS: 1}))
			if q < 2 {
				ops = append(ops, SendQueued(id, uint16(q+1)))
			}
		}
		flush()
	}
	s.Close()
	snapshotDir := copyDir(b, journalDir)
	s, _ = openStore(b, snapshotDir, Options{MaxBytes: 1 << 42})
	s.mu.Lock()
	snap, count := s.encodeStateLocked()
	s.mu.Unlock()
	s.compactWith(snap, count)
	s.Close()

	for _, tc := range []struct{ name, dir string }{{"journal", journalDir}, {"snapshot", snapshotDir}} {
		b.Run(tc.name, func(b *testing.B) {
			var st Stats
			for range b.N {
				s, state := openStore(b, tc.dir, Options{MaxBytes: 1 << 42})
				if len(state.Retained) != 100_000 || len(state.Sessions) != 10_000 {
					b.Fatalf("loaded %d retained, %d sessions", len(state.Retained), len(state.Sessions))
				}
				st = s.Stats()
				s.Close()
			}
			b.ReportMetric(float64(st.SnapshotBytes+st.JournalBytes)/(1<<20), "MiB-on-disk")
			b.ReportMetric(float64(st.RecordsReplayed), "records")
		})
	}
}
