// Package consumer moves lifecycle events from a source (the in-process
// queue, or a RocketMQ push consumer) into the store: batched, idempotent,
// retried while the store is unavailable, with poison messages parked.
package consumer

import (
	"context"
	"errors"
	"sync"

	"github.com/presenced/presenced/presence"
)

// ErrQueueClosed is returned by Emit after Close, and by Next once a closed
// queue is empty.
var ErrQueueClosed = errors.New("event queue closed")

// Message is one item of the transport: a client lifecycle event, or, when
// Node is set, a broker node's report about itself.
type Message struct {
	Event presence.Event
	Node  *presence.NodeEvent
}

// Queue is the in-process transport between the broker and the consumer.
//
// It is bounded by refusing connect events once Limit events are waiting: a
// refused connect makes the broker answer CONNACK 0x03 (server unavailable),
// so no client is accepted whose presence could not be recorded. disconnect
// and tcpclean are always accepted — refusing them would lose the truth about
// clients already admitted — and since each admitted connect brings at most
// two more events, the queue never holds more than about 3 × (Limit + open
// connections) events. We refuse rather than spill to a local file because a
// database outage long enough to fill the queue is better surfaced to
// clients (they retry with backoff) than hidden behind a disk that can fill
// too; the RocketMQ mode has its own durable outbox for deployments that
// must keep accepting.
type Queue struct {
	limit int

	mu      sync.Mutex
	items   []Message
	closed  bool
	waiting chan struct{} // closed and replaced when events arrive or the queue closes
	refused uint64
}

// NewQueue returns a queue that refuses connect events once limit events are
// waiting. limit <= 0 means 100,000.
func NewQueue(limit int) *Queue {
	if limit <= 0 {
		limit = 100_000
	}
	return &Queue{limit: limit, waiting: make(chan struct{})}
}

// Emit enqueues e. It is the broker's EventSink.
func (q *Queue) Emit(e presence.Event) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrQueueClosed
	}
	if e.Type == presence.EventConnect && len(q.items) >= q.limit {
		q.refused++
		return presence.Errorf(presence.EOVERLOADED, "event backlog full (%d events waiting for the store)", len(q.items))
	}
	q.push(Message{Event: e})
	return nil
}

// EmitNode enqueues a node event. Node events are few (a heartbeat every
// few seconds) and always accepted: they carry the truth about many clients.
func (q *Queue) EmitNode(n presence.NodeEvent) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrQueueClosed
	}
	q.push(Message{Node: &n})
	return nil
}

// push appends m and wakes the waiting reader; q.mu must be held.
func (q *Queue) push(m Message) {
	q.items = append(q.items, m)
	close(q.waiting)
	q.waiting = make(chan struct{})
}

// Next blocks until messages are waiting and returns up to max of them,
// oldest first. It returns ErrQueueClosed once the queue is closed and empty, and
// ctx.Err() when ctx ends first. Events taken are the caller's to apply: the
// queue does not keep them.
func (q *Queue) Next(ctx context.Context, max int) ([]Message, error) {
	for {
		q.mu.Lock()
		if n := min(len(q.items), max); n > 0 {
			batch := make([]Message, n)
			copy(batch, q.items)
			// Shift instead of reslicing so the backing array does not grow forever.
			rest := copy(q.items, q.items[n:])
			clear(q.items[rest:])
			q.items = q.items[:rest]
			q.mu.Unlock()
			return batch, nil
		}
		if q.closed {
			q.mu.Unlock()
			return nil, ErrQueueClosed
		}
		waiting := q.waiting
		q.mu.Unlock()
		select {
		case <-waiting:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Close stops accepting events; Next drains what is waiting, then reports
// ErrQueueClosed.
func (q *Queue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.waiting)
	}
}

// Len returns the number of messages waiting.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// Refused returns how many connect events were refused because the queue was full.
func (q *Queue) Refused() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.refused
}
