package main

import (
	"log/slog"
	"syscall"
)

// raiseFileLimit raises the soft limit on open files (RLIMIT_NOFILE) to the
// hard limit and returns the soft limit in force afterwards (0 if it cannot
// be read). Every MQTT connection, SSE stream, HTTP request and database
// connection takes a descriptor; a soft limit left at the usual 1,024 would
// stop all of them at a few hundred clients while the hard limit allows far
// more. The Go runtime already raises it on Linux when package os starts
// (Go 1.19+); doing it here makes it explicit, logged, and so the same
// on every platform and in every mode.
func raiseFileLimit(log *slog.Logger) (soft uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("file descriptor limit unknown", "err", err)
		return 0
	}
	if lim.Cur < lim.Max {
		raised := syscall.Rlimit{Cur: lim.Max, Max: lim.Max}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			// macOS refuses an unlimited hard limit as the soft one.
			log.Warn("file descriptor limit not raised", "soft", lim.Cur, "hard", lim.Max, "err", err)
		} else {
			lim.Cur = lim.Max
		}
	}
	log.Info("file descriptor limit", "soft", lim.Cur, "hard", lim.Max)
	return lim.Cur
}

// fileLimit returns the soft RLIMIT_NOFILE now, 0 if unknown.
func fileLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	return lim.Cur
}

// connectionsForFileLimit is the default of --mqtt-max-connections: the
// file limit less a headroom for everything else that needs descriptors —
// HTTP and SSE clients, the database pool, the outbox files, the private
// PostgreSQL's sockets and the runtime's own (epoll, pipes): an eighth of
// the limit, at least 256, at most half. Past it the broker closes new
// connections at once, so the API and the database keep descriptors when
// MQTT clients pile up. 0 (unknown limit) means unlimited.
func connectionsForFileLimit(soft uint64) int {
	const most = 1 << 30 // an unlimited hard limit must not overflow int
	soft = min(soft, most)
	headroom := min(max(256, soft/8), soft/2)
	return int(soft - headroom)
}

// connectionLimit is the value of a listener's --*-max-connections flag,
// or when it is 0 the default fromFileLimit derives from the open-file
// limit (raised by raiseFileLimit at start).
func connectionLimit(flagValue int, listener string, fromFileLimit func(soft uint64) int, log *slog.Logger) int {
	if flagValue > 0 {
		return flagValue
	}
	soft := fileLimit()
	n := fromFileLimit(soft)
	log.Info(listener+" connection limit from the open-file limit", "max_connections", n, "file_limit", soft)
	return n
}
