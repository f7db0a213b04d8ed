package consumer

import (
	"context"
	"errors"
)

// DefaultBatchSize is the most events applied in one transaction.
const DefaultBatchSize = 1000

// Pump moves events from the in-process Queue into the store.
//
// Batching is natural rather than timed: while one batch is being applied,
// new events accumulate in the queue and form the next batch. A lone event
// is applied at once (lowest latency when idle) and a burst is applied in
// large batches (highest throughput under load), with no linger timer.
type Pump struct {
	Queue     *Queue
	Applier   *Applier
	BatchSize int
}

// Run applies events until the queue is closed and drained (returns nil) or
// ctx ends (returns ctx.Err(); events still queued are not applied). Closing
// the queue, then waiting for Run, is the graceful drain.
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
		if err := p.Applier.ApplyRetrying(ctx, batch); err != nil {
			return err
		}
	}
}
