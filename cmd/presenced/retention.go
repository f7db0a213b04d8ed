package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/presence/pgstore"
)

// retentionConfig says how long the store keeps closed channels and
// parked messages (serve, consumer and api modes: every process that has
// the database). Several processes may prune at once: the prune takes
// rows with SKIP LOCKED, so they share the work.
type retentionConfig struct {
	// Channels: closed channels (and their events) whose tcpclean was
	// applied longer ago than this are deleted; 0 keeps everything.
	// Open channels are never deleted, however old.
	Channels time.Duration
	// Rejected: parked messages received longer ago are deleted; 0 keeps them.
	Rejected time.Duration
	// Every: how often the prune runs (and once at start).
	Every time.Duration
}

func registerRetentionFlags(f *envFlags, c *retentionConfig) {
	f.Duration(&c.Channels, "retention", 30*24*time.Hour, "closed channels and their events older than this are deleted; open channels never are (0: keep everything)")
	f.Duration(&c.Rejected, "rejected-retention", 7*24*time.Hour, "parked (rejected) messages older than this are deleted (0: keep them)")
	f.Duration(&c.Every, "retention-every", time.Hour, "how often retention runs")
}

// minRetention keeps retention far longer than any redelivery window of
// the transport: an event redelivered after its channel was deleted would
// be stored again as new (see pgstore.Store.Prune).
const minRetention = time.Hour

func (c retentionConfig) validate() error {
	var errs []error
	if c.Channels != 0 && c.Channels < minRetention {
		errs = append(errs, fmt.Errorf("--retention must be 0 (keep everything) or at least %v, not %v", minRetention, c.Channels))
	}
	if c.Rejected < 0 {
		errs = append(errs, fmt.Errorf("--rejected-retention must not be negative (0 keeps everything), not %v", c.Rejected))
	}
	if c.Every <= 0 {
		errs = append(errs, fmt.Errorf("--retention-every must be positive, not %v", c.Every))
	}
	return errors.Join(errs...)
}

// retention is the component that prunes the store on schedule. A failed
// prune is logged and tried again at the next run: retention is never
// urgent enough to stop the process.
func retention(store *pgstore.Store, c retentionConfig, now func() time.Time, reg prometheus.Registerer, log *slog.Logger) component {
	log = log.With("component", "retention")
	deleted := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "presenced_retention_deleted_total",
		Help: "Rows retention deleted: what=channels (closed channels, with their events) or rejected (parked messages).",
	}, []string{"what"})
	failed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "presenced_retention_failures_total",
		Help: "Retention runs that failed (retried at the next run), by what they were deleting.",
	}, []string{"what"})
	reg.MustRegister(deleted, failed)
	// pruneOlder deletes what is older than keep (0: keep all) with del.
	pruneOlder := func(ctx context.Context, what string, keep time.Duration, del func(context.Context, time.Time) (int64, error)) {
		deleted.WithLabelValues(what) // exported at 0 before the first deletion
		if keep == 0 {
			return
		}
		cutoff := now().Add(-keep)
		n, err := del(ctx, cutoff)
		deleted.WithLabelValues(what).Add(float64(n))
		switch {
		case err != nil && ctx.Err() == nil:
			failed.WithLabelValues(what).Inc()
			log.Warn("retention failed; retrying at the next run", "what", what, "before", cutoff, "deleted", n, "err", err)
		case n > 0:
			log.Info("retention deleted old rows", "what", what, "before", cutoff, "deleted", n)
		}
	}
	prune := func(ctx context.Context) {
		pruneOlder(ctx, "channels", c.Channels, store.Prune)
		pruneOlder(ctx, "rejected", c.Rejected, store.PruneRejected)
	}
	return component{name: "retention", run: func(ctx context.Context) error {
		if c.Channels == 0 && c.Rejected == 0 {
			return nil
		}
		ticker := time.NewTicker(c.Every)
		defer ticker.Stop()
		for {
			prune(ctx)
			select {
			case <-ctx.Done():
				return nil
			case <-ticker.C:
			}
		}
	}}
}
