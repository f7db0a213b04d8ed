package consumer

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/presenced/presenced/presence"
)

// ApplyFunc stores a batch of valid events idempotently in one transaction
// and returns the events that were new (duplicates are absorbed). An error
// whose presence.ErrorCode is EUNAVAILABLE is transient.
type ApplyFunc func(ctx context.Context, events []presence.Event) ([]presence.StoredEvent, error)

// AppliedFunc is told about the newly stored events of one transaction,
// in seq order, after it committed. With several writers (Pump.Writers,
// Coalesce) it is called from each at once, in no order between them: what
// must follow the store in order follows its change feed instead.
type AppliedFunc func(applied []presence.StoredEvent)

// Stats are the consumer's counters, for metrics.
type Stats struct {
	Batches    atomic.Uint64
	Received   atomic.Uint64 // events handed to Apply (including retries of the same event once)
	Applied    atomic.Uint64 // events newly stored
	Duplicates atomic.Uint64 // events the store already had
	Rejected   atomic.Uint64 // events parked as invalid
	Failures   atomic.Uint64 // failed Apply attempts
	LastBatch  atomic.Int64  // size of the last batch
	// LagMillis is the age, at apply time, of the newest event of the last batch (broker clock).
	LagMillis atomic.Int64
}

// attemptTimeout bounds one store transaction of ApplyRetrying; a batch
// of the largest size commits in well under a second on a healthy store.
const attemptTimeout = 30 * time.Second

// Applier applies batches to the store, reports what was new, and keeps
// counters. It is shared by every source, and safe for concurrent writers.
type Applier struct {
	apply     ApplyFunc
	onApplied AppliedFunc
	log       *slog.Logger
	now       func() time.Time
	Stats     Stats
}

// NewApplier returns an Applier. onApplied may be nil.
func NewApplier(apply ApplyFunc, onApplied AppliedFunc, log *slog.Logger, now func() time.Time) *Applier {
	if log == nil {
		log = slog.Default()
	}
	if now == nil {
		now = time.Now
	}
	return &Applier{apply: apply, onApplied: onApplied, log: log, now: now}
}

// ApplyOnce applies one batch once; the caller decides how to retry.
func (a *Applier) ApplyOnce(ctx context.Context, events []presence.Event) error {
	if len(events) == 0 {
		return nil
	}
	a.Stats.Batches.Add(1)
	a.Stats.LastBatch.Store(int64(len(events)))
	applied, err := a.apply(ctx, events)
	if err != nil {
		a.Stats.Failures.Add(1)
		return err
	}
	a.Stats.Received.Add(uint64(len(events)))
	a.Stats.Applied.Add(uint64(len(applied)))
	// Around takeovers the count is off by the store's holds: a takeover
	// close held for its successor counts here, and its release later
	// counts as applied in a batch it was not part of.
	a.Stats.Duplicates.Add(uint64(max(len(events)-len(applied), 0)))
	var newest int64
	for _, e := range events {
		newest = max(newest, e.Time)
	}
	a.Stats.LagMillis.Store(a.now().UnixMilli() - newest)
	if a.onApplied != nil && len(applied) > 0 {
		a.onApplied(applied)
	}
	return nil
}

// ApplyRetrying applies one batch, retrying with capped exponential backoff
// until it succeeds or ctx ends. Only a batch the database refuses as
// invalid (presence.EINVALID: retrying would fail forever) is handed back
// at once, for the caller to split and park; every other failure is the
// store's and is retried, since the events are durable in the log
// meanwhile.
func (a *Applier) ApplyRetrying(ctx context.Context, events []presence.Event) error {
	backoff := presence.Backoff{Min: 10 * time.Millisecond, Max: 2 * time.Second}
	for {
		// Each attempt is bounded: across a network cut a query can
		// otherwise wait for TCP's own timeouts (many minutes) before
		// the next attempt finds the database back.
		attemptCtx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := a.ApplyOnce(attemptCtx, events)
		cancel()
		if err == nil {
			if backoff.Failures() > 0 {
				a.log.Info("store apply recovered", "attempts", backoff.Failures()+1, "events", len(events))
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if presence.ErrorCode(err) == presence.EINVALID {
			return err
		}
		if n := backoff.Failures(); n == 0 || n%20 == 19 {
			a.log.Warn("store apply failed; retrying", "err", err, "events", len(events), "attempt", n+1)
		}
		if err := backoff.Wait(ctx); err != nil {
			return err
		}
	}
}
