package consumer

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/presenced/presenced/presence"
)

// NodeApplyFunc records a node event in the store and closes the channels
// it fences or reconciles away, through the same idempotent path as client
// events. It returns the synthesized events that were newly stored.
type NodeApplyFunc func(ctx context.Context, n presence.NodeEvent) ([]presence.StoredEvent, error)

// NodeApplier applies node events, retrying while the store is unavailable.
type NodeApplier struct {
	apply     NodeApplyFunc
	onApplied AppliedFunc
	log       *slog.Logger
	// Applied counts node events stored; Closed counts channels they closed.
	Applied atomic.Uint64
	Closed  atomic.Uint64
}

// NewNodeApplier returns a NodeApplier; onApplied may be nil.
func NewNodeApplier(apply NodeApplyFunc, onApplied AppliedFunc, log *slog.Logger) *NodeApplier {
	if log == nil {
		log = slog.Default()
	}
	return &NodeApplier{apply: apply, onApplied: onApplied, log: log}
}

// ApplyOnce applies one node event once.
func (a *NodeApplier) ApplyOnce(ctx context.Context, n presence.NodeEvent) error {
	closed, err := a.apply(ctx, n)
	if err != nil {
		return err
	}
	a.Applied.Add(1)
	if len(closed) > 0 {
		a.Closed.Add(uint64(len(closed)))
		a.log.Info("closed channels of a broker node", "node", n.Node, "epoch", n.Epoch, "event", n.Type, "channels", len(closed), "reason", closed[0].Reason)
		if a.onApplied != nil {
			a.onApplied(closed)
		}
	}
	return nil
}

// ApplyRetrying applies one node event, retrying with capped backoff until
// it succeeds or ctx ends.
func (a *NodeApplier) ApplyRetrying(ctx context.Context, n presence.NodeEvent) error {
	backoff := presence.Backoff{Min: 10 * time.Millisecond, Max: 2 * time.Second}
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := a.ApplyOnce(attemptCtx, n)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if k := backoff.Failures(); k == 0 || k%20 == 19 {
			a.log.Warn("store apply of node event failed; retrying", "err", err, "node", n.Node, "event", n.Type, "attempt", k+1)
		}
		if err := backoff.Wait(ctx); err != nil {
			return err
		}
	}
}
