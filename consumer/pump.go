package consumer

import (
	"context"
	"errors"

	"github.com/presenced/presenced/presence"
)

// DefaultBatchSize is the most events applied in one transaction.
const DefaultBatchSize = 1000

// Pump moves messages from the in-process Queue into the store.
//
// Batching is natural rather than timed: while one batch is being applied,
// new events accumulate in the queue and form the next batch. A lone event
// is applied at once (lowest latency when idle) and a burst is applied in
// large batches (highest throughput under load), with no linger timer.
type Pump struct {
	Queue     *Queue
	Applier   *Applier
	Nodes     *NodeApplier // may be nil when no node events are sent
	BatchSize int
}

// Run applies messages until the queue is closed and drained (returns nil)
// or ctx ends (returns ctx.Err(); messages still queued are not applied).
// Closing the queue, then waiting for Run, is the graceful drain.
func (p *Pump) Run(ctx context.Context) error {
	size := p.BatchSize
	if size <= 0 {
		size = DefaultBatchSize
	}
	for {
		batch, err := p.Queue.Next(ctx, size)
		if errors.Is(err, ErrQueueClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := p.applyInOrder(ctx, batch); err != nil {
			return err
		}
	}
}

// applyInOrder applies a batch as runs of lifecycle events separated by
// node events, keeping the order the broker emitted them in: a node's
// channel-set report must be applied after the events emitted before it.
func (p *Pump) applyInOrder(ctx context.Context, batch []Message) error {
	events := make([]presence.Event, 0, len(batch))
	flush := func() error {
		if len(events) == 0 {
			return nil
		}
		err := p.Applier.ApplyRetrying(ctx, events)
		events = events[:0]
		return err
	}
	for _, m := range batch {
		if m.Node == nil {
			events = append(events, m.Event)
			continue
		}
		if err := flush(); err != nil {
			return err
		}
		if p.Nodes != nil {
			if err := p.Nodes.ApplyRetrying(ctx, *m.Node); err != nil {
				return err
			}
		}
	}
	return flush()
}
