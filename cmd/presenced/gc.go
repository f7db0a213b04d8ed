package main

import (
	"log/slog"
	"runtime/debug"
	"strconv"
)

// consumerGCPercent is the garbage collector target of `presenced consumer`
// unless GOGC is set. Its heap is small and short-lived — pulled messages
// and decoded batches, a few tens of MB at most — and at 20k events/s
// collection took about a fifth of its CPU on a machine it shares with
// PostgreSQL. Collecting when the heap reaches 5× the live data instead of
// 2× trades some tens of MB for that CPU: the whole RocketMQ path ran
// 13–17 % faster side by side (BENCHMARKS.md). The broker keeps Go's
// default: its live heap is the connections, and idle memory is its figure.
const consumerGCPercent = 400

// defaultGCPercent sets the collector's target to percent unless the
// operator chose one with GOGC.
func defaultGCPercent(getenv func(string) string, percent int, log *slog.Logger) {
	if v := getenv("GOGC"); v != "" {
		log.Info("garbage collector target from GOGC", "GOGC", v)
		return
	}
	debug.SetGCPercent(percent)
	log.Debug("garbage collector target", "GOGC", strconv.Itoa(percent))
}
