package consumer

import (
	"context"
	"sync"

	"github.com/presenced/presenced/presence"
)

// Coalesce returns an ApplyFunc that merges the batches of concurrent
// callers into one store transaction (group commit). The RocketMQ push
// consumer hands over small batches (a broker returns at most 32 messages
// per pull) from up to 20 goroutines at once; since the store serializes
// transactions, applying them one by one caps throughput at a few hundred
// transactions of 32 events. Merged, one transaction carries all that
// waited meanwhile. Each caller gets back the newly stored events of its
// own batch, or the merged transaction's error.
func Coalesce(apply ApplyFunc) ApplyFunc {
	c := &coalescer{apply: apply}
	return c.Apply
}

type coalescer struct {
	apply ApplyFunc

	mu      sync.Mutex
	pending []*coalesced
	leading bool // a caller is applying merged batches
}

type coalesced struct {
	ctx     context.Context
	events  []presence.Event
	applied []presence.StoredEvent
	err     error
	done    chan struct{}
}

// MaxCoalescedEvents bounds one merged transaction.
const MaxCoalescedEvents = 5000

func (c *coalescer) Apply(ctx context.Context, events []presence.Event) ([]presence.StoredEvent, error) {
	req := &coalesced{ctx: ctx, events: events, done: make(chan struct{})}
	c.mu.Lock()
	c.pending = append(c.pending, req)
	if c.leading {
		c.mu.Unlock()
		<-req.done
		return req.applied, req.err
	}
	c.leading = true
	c.mu.Unlock()
	// This caller leads: it applies merged batches until none wait, its
	// own among the first.
	for {
		c.mu.Lock()
		group := c.take()
		if len(group) == 0 {
			c.leading = false
			c.mu.Unlock()
			break
		}
		c.mu.Unlock()
		c.applyGroup(group)
	}
	return req.applied, req.err
}

// take removes up to MaxCoalescedEvents events' worth of waiting requests
// (at least one); c.mu must be held.
func (c *coalescer) take() []*coalesced {
	n, total := 0, 0
	for n < len(c.pending) && (n == 0 || total+len(c.pending[n].events) <= MaxCoalescedEvents) {
		total += len(c.pending[n].events)
		n++
	}
	group := c.pending[:n:n]
	c.pending = c.pending[n:]
	return group
}

func (c *coalescer) applyGroup(group []*coalesced) {
	n := 0
	for _, r := range group {
		n += len(r.events)
	}
	merged := make([]presence.Event, 0, n)
	for _, r := range group {
		merged = append(merged, r.events...)
	}
	// The transaction runs on the leader's context: a caller that gives up
	// does not abort the others' events.
	applied, err := c.apply(group[0].ctx, merged)
	owner := make(map[presence.Key]*coalesced, len(merged))
	for _, r := range group {
		for _, e := range r.events {
			if owner[e.Key()] == nil {
				owner[e.Key()] = r
			}
		}
	}
	for _, a := range applied {
		if r := owner[a.Key()]; r != nil {
			r.applied = append(r.applied, a)
		}
	}
	for _, r := range group {
		r.err = err
		close(r.done)
	}
}
