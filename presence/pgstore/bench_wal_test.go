package pgstore_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// BenchmarkConnectCycleCost applies connect cycles as serve stores them:
// a batch of 500 connects, then their disconnects, then their tcpcleans
// (each channel row inserted once and updated twice), and reports what
// PostgreSQL spends per cycle: WAL records, full-page images and bytes
// (pg_stat_wal, the whole test cluster: run it alone) and the CPU of the
// cluster's processes (utime+stime from /proc of the postmaster's
// children).
//
//	go test -run '^$' -bench ConnectCycleCost -benchtime 40x ./presence/pgstore
func BenchmarkConnectCycleCost(b *testing.B) {
	s := pgtest.NewStore(b)
	const channels = 500
	n := 0
	batch := func(typ presence.EventType, first int) []presence.Event {
		out := make([]presence.Event, channels)
		for i := range out {
			id := first + i
			out[i] = ev(fmt.Sprintf("GID_bench@@@device-%d", id%100_000), fmt.Sprintf("%032x", id), typ, int64(id))
		}
		return out
	}
	readWAL := func() (records, fpi, bytes int64) {
		if err := s.Pool().QueryRow(ctx, "SELECT wal_records, wal_fpi, wal_bytes::bigint FROM pg_stat_wal").Scan(&records, &fpi, &bytes); err != nil {
			b.Fatal(err)
		}
		return records, fpi, bytes
	}
	// Autovacuum would add its own WAL and CPU at random points: off for
	// the tables written here (events is partitioned: its partitions).
	if _, err := s.Pool().Exec(ctx, `DO $$DECLARE r record; BEGIN
		FOR r IN SELECT c.oid::regclass AS t FROM pg_class c WHERE c.relname = 'channels'
		         OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'events'::regclass) LOOP
			EXECUTE format('ALTER TABLE %s SET (autovacuum_enabled = false)', r.t);
		END LOOP; END$$`); err != nil {
		b.Fatal(err)
	}
	var backend int
	if err := s.Pool().QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		b.Fatal(err)
	}
	postmaster, _ := procStat(backend)
	r0, f0, by0 := readWAL()
	cpu0 := clusterCPUTicks(postmaster)
	b.ResetTimer()
	for b.Loop() {
		for _, typ := range []presence.EventType{presence.EventConnect, presence.EventDisconnect, presence.EventTCPClean} {
			if res, err := s.Apply(ctx, batch(typ, n)); err != nil || len(res.Applied) != channels {
				b.Fatalf("apply %s: %d applied, %v", typ, len(res.Applied), err)
			}
		}
		n += channels
	}
	b.StopTimer()
	cpu := clusterCPUTicks(postmaster) - cpu0
	r1, f1, by1 := readWAL()
	walRecords, walFPI, walBytes := r1-r0, f1-f0, by1-by0
	cycles := float64(b.N * channels)
	b.ReportMetric(float64(walRecords)/cycles, "WAL-records/cycle")
	b.ReportMetric(float64(walFPI)/cycles, "WAL-FPI/cycle")
	b.ReportMetric(float64(walBytes)/cycles, "WAL-B/cycle")
	b.ReportMetric(float64(cpu)*1e6/100/cycles, "pg-CPU-µs/cycle") // USER_HZ = 100
	b.ReportMetric(cycles/b.Elapsed().Seconds(), "cycles/s")
	// How many channel updates were HOT (no new index entries). The
	// counters reach the shared statistics when a backend flushes them.
	var updates, hot int64
	if _, err := s.Pool().Exec(ctx, "SELECT pg_stat_force_next_flush()"); err != nil {
		b.Fatal(err)
	}
	if err := s.Pool().QueryRow(ctx, `SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'channels'`).Scan(&updates, &hot); err != nil {
		b.Fatal(err)
	}
	if updates > 0 {
		b.ReportMetric(float64(hot)/float64(updates), "HOT-share")
	}
}

// clusterCPUTicks sums utime and stime (clock ticks) of the postmaster
// and its children.
func clusterCPUTicks(postmaster int) int64 {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var ticks int64
	for _, path := range stats {
		pid, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(path, "/proc/"), "/stat"))
		if ppid, t := procStat(pid); pid == postmaster || ppid == postmaster {
			ticks += t
		}
	}
	return ticks
}

// procStat reads a process's parent and its CPU ticks (utime + stime);
// zeros when it is gone.
func procStat(pid int) (ppid int, ticks int64) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	line := string(raw)
	fields := strings.Fields(line[strings.LastIndexByte(line, ')')+1:])
	if len(fields) < 13 {
		return 0, 0
	}
	ppid, _ = strconv.Atoi(fields[1])
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return ppid, utime + stime
}
