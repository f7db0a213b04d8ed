package webhook

import "sync/atomic"

// Stats are one hook's counters, for metrics.
type Stats struct {
	// Delivered counts changes delivered (2xx), duplicates of a retried
	// batch counted once.
	Delivered atomic.Int64
	// Failed counts failed attempts.
	Failed atomic.Int64
	// Cursor is the feed seq up to which the hook is done.
	Cursor atomic.Int64
	// Head is the newest seq of the feed, as last read.
	Head atomic.Int64
	// Pending is the number of changes of the batch being delivered (the
	// hook's whole memory).
	Pending atomic.Int64
	// LastSuccess is the Unix time (ms) of the last 2xx; 0 before one.
	LastSuccess atomic.Int64
	// Leader is 1 while this process holds the hook's lease.
	Leader atomic.Int64
}

// Lag is how many seqs of the feed the hook is behind.
func (s *Stats) Lag() int64 { return max(s.Head.Load()-s.Cursor.Load(), 0) }
