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

// retention is the component that keeps the store's history within
// bounds on schedule: it makes the event history's day partitions of the
// coming days (always, even when everything is kept) and prunes what is
// older than the retention. A failed run is logged and tried again at the
// next: retention is never urgent enough to stop the process.
func retention(store *pgstore.Store, c retentionConfig, now func() time.Time, reg prometheus.Registerer, log *slog.Logger) component {
	log = log.With("component", "retention")
	deleted := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "presenced_retention_deleted_total",
		Help: "What retention removed: what=channels (closed channels), partitions (day partitions of events dropped), rejected (parked messages), refused (refused connects, under --retention).",
	}, []string{"what"})
	kept := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "presenced_retention_kept_events_total",
		Help: "Events copied forward out of dropped partitions: those of open channels and of channels closed inside the retention.",
	})
	failed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "presenced_retention_failures_total",
		Help: "Retention runs that failed (retried at the next run), by what they were doing: channels, partitions (making them), rejected.",
	}, []string{"what"})
	reg.MustRegister(deleted, kept, failed)
	for _, what := range []string{"channels", "partitions", "rejected", "refused"} {
		deleted.WithLabelValues(what) // exported at 0 before the first deletion
		failed.WithLabelValues(what)
	}
	report := func(ctx context.Context, what string, cutoff time.Time, n int64, err error) {
		deleted.WithLabelValues(what).Add(float64(n))
		switch {
		case err != nil && ctx.Err() == nil:
			failed.WithLabelValues(what).Inc()
			log.Warn("retention failed; retrying at the next run", "what", what, "before", cutoff, "deleted", n, "err", err)
		case n > 0:
			log.Info("retention deleted old rows", "what", what, "before", cutoff, "deleted", n)
		}
	}
	run := func(ctx context.Context) {
		if err := store.EnsurePartitions(ctx); err != nil && ctx.Err() == nil {
			failed.WithLabelValues("partitions").Inc()
			log.Warn("making the event partitions of the coming days failed; retrying at the next run", "err", err)
		}
		if c.Channels > 0 {
			cutoff := now().Add(-c.Channels)
			p, err := store.Prune(ctx, cutoff)
			kept.Add(float64(p.Kept))
			report(ctx, "channels", cutoff, p.Channels, err)
			report(ctx, "partitions", cutoff, p.Partitions, nil)
			n, err := store.PruneRefused(ctx, cutoff)
			report(ctx, "refused", cutoff, n, err)
		}
		if c.Rejected > 0 {
			cutoff := now().Add(-c.Rejected)
			n, err := store.PruneRejected(ctx, cutoff)
			report(ctx, "rejected", cutoff, n, err)
		}
	}
	return component{name: "retention", run: func(ctx context.Context) error {
		ticker := time.NewTicker(c.Every)
		defer ticker.Stop()
		for {
			run(ctx)
			select {
			case <-ctx.Done():
				return nil
			case <-ticker.C:
			}
		}
	}}
}
