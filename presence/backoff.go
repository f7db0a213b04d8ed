package presence

import (
	"context"
	"time"
)

// Backoff is the one capped exponential backoff of presenced: every loop
// that retries something that failed (a store apply, a send to RocketMQ, an
// accept, a restart of the private PostgreSQL) waits through one of these,
// so they all behave alike: Min after the first failure, doubling up to
// Max, and back to Min after Reset. The zero value waits 10 ms up to 2 s.
// A Backoff is not safe for concurrent use; each loop owns its own.
type Backoff struct {
	Min, Max time.Duration
	failures int
}

// Next records a failure and returns how long to wait before the next try.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 10 * time.Millisecond
	}
	if hi < lo {
		hi = max(lo, 2*time.Second)
	}
	d := lo << min(b.failures, 30)
	if d <= 0 || d > hi { // d <= 0: the shift overflowed
		d = hi
	}
	b.failures++
	return d
}

// Failures returns the number of failures since the last Reset.
func (b *Backoff) Failures() int { return b.failures }

// Reset ends a run of failures: the next wait is Min again.
func (b *Backoff) Reset() { b.failures = 0 }

// Wait records a failure and sleeps for the next backoff, or until ctx
// ends; it returns ctx.Err() in that case.
func (b *Backoff) Wait(ctx context.Context) error {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
