package consumer

import (
	"context"
	"log/slog"
	"time"

	"github.com/presenced/presenced/presence"
)

// ExpireFunc marks nodes that missed their lease as silent and closes the
// channels of nodes silent past the grace period; it returns the
// synthesized events that were newly stored.
type ExpireFunc func(ctx context.Context) ([]presence.StoredEvent, error)

// LeaseMonitor runs ExpireFunc periodically. Every process with a store may
// run one (they are idempotent): a crashed broker's clients must turn
// unknown, then offline, even when no broker of that node ever returns.
type LeaseMonitor struct {
	Expire    ExpireFunc
	Every     time.Duration // default 1s
	OnApplied AppliedFunc   // may be nil
	Log       *slog.Logger
}

// Run checks leases until ctx ends.
func (m *LeaseMonitor) Run(ctx context.Context) error {
	every := m.Every
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		closed, err := m.Expire(ctx)
		if err != nil {
			if ctx.Err() == nil && m.Log != nil {
				m.Log.Warn("lease check failed", "err", err)
			}
			continue
		}
		if len(closed) > 0 {
			if m.Log != nil {
				m.Log.Info("closed channels of lost broker nodes", "channels", len(closed))
			}
			if m.OnApplied != nil {
				m.OnApplied(closed)
			}
		}
	}
}
