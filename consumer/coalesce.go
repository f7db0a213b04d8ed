package consumer

import (
	"context"
	"sync"

	"github.com/presenced/presenced/presence"
)

// Coalesce returns an ApplyFunc that merges the batches of concurrent
// callers into store transactions (group commit), at most writers of them
// at once (at least one). The RocketMQ push consumer hands over small
// batches (a broker returns at most 32 messages per pull) from up to 20
// goroutines at once; applying them one by one caps throughput at a few
// hundred transactions of 32 events. Merged, each transaction carries all
// that waited meanwhile, and writers transactions run side by side. Each
// caller gets back the newly stored events of its own batch, or the error
// of the transaction that carried it.
func Coalesce(apply ApplyFunc, writers int) ApplyFunc {
	c := &coalescer{apply: apply, writers: max(writers, 1)}
	return c.Apply
}

type coalescer struct {
	apply   ApplyFunc
	writers int

	mu      sync.Mutex
	pending []*coalesced
	leaders int // callers applying merged batches
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
	if c.leaders == c.writers {
		c.mu.Unlock()
		<-req.done
		return req.applied, req.err
	}
	c.leaders++
	c.mu.Unlock()
	// This caller leads: it applies merged batches until none wait, its
	// own among them — or another leader took it, and it waits for that.
	for {
		c.mu.Lock()
		group := c.take()
		if len(group) == 0 {
			c.leaders--
			c.mu.Unlock()
			break
		}
		c.mu.Unlock()
		c.applyGroup(group)
	}
	<-req.done
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
