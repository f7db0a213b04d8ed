package mqttbroker

import (
	"math"

	"github.com/presenced/presenced/mqttbroker/persist"
	"sync"
	"sync/atomic"
)

// sessionBudget holds the QoS 1 and 2 messages kept for sessions — queued,
// or in flight and not yet acknowledged — within MaxSessionBytes across all
// sessions together. A per-session cap alone (MaxQueuedMessages) lets the
// number of sessions multiply it without end.
//
// Beyond the budget the oldest queued message of any session is dropped,
// rather than refusing new persistent sessions (CONNACK 0x03) or new
// messages:
//   - the queues are filled by publishers, not by the sessions' owners, so
//     refusing sessions would not stop them growing;
//   - refusing new messages would freeze offline delivery for everyone, for
//     up to SessionExpiry, once one publisher had filled the budget; dropping
//     the oldest keeps the newest state flowing, the same rule as the
//     per-session cap;
//   - MQTT 3.1.1 lets a server bound what it stores for a session (§4.1,
//     "storage capabilities … will have limits"), and a persistent client
//     already loses queued messages when its session expires.
//
// A message shared by many sessions is charged once, while any holds it;
// each delivery is charged deliveryOverhead for its own bookkeeping. Only
// queued deliveries can be dropped: in-flight ones carry a packet id the
// client may have seen. When nothing is queued and the budget is full, a
// new message is dropped instead of queued.
//
// Lock order: session.mu, then sessionBudget.mu; eviction takes them one
// after the other, never nested the other way.
type sessionBudget struct {
	max    int64
	bytes  atomic.Int64 // charged: messages held by sessions, plus bookkeeping
	queued atomic.Int64 // deliveries in session queues

	mu      sync.Mutex
	lastSeq uint64
	// order holds one ref per delivery queued, in the order queued across
	// all sessions. A ref whose delivery has left its queue (sent, dropped,
	// discarded) is stale: see live. Stale refs are skipped when popped and
	// compacted away when they outnumber the live ones.
	order []queuedRef
}

type queuedRef struct {
	sess *session
	seq  uint64
}

// Estimated bytes of a held message beyond topic and payload, and of one
// delivery's bookkeeping (its queue slot or inflightMessage, its ref).
const (
	heldMessageOverhead = 120
	deliveryOverhead    = 64
)

func heldCost(m *message) int64 {
	return int64(heldMessageOverhead + len(m.topic) + len(m.payload) + m.props.cost())
}

// live reports whether the delivery r refers to is still queued: a session
// queue only ever loses its head, so every delivery at or after the head
// is there, every one before it is gone.
func (r queuedRef) live() bool { return r.seq >= r.sess.headSeq.Load() }

// chargeLocked charges a delivery taken on by sess, queued or in flight.
// It reports false, charging nothing, when the budget is full and nothing
// queued is left to make room. The caller holds sess.mu.
func (s *Server) chargeLocked(d delivery) bool {
	b := &s.budget
	if b.bytes.Load()+heldCost(d.msg)+deliveryOverhead > b.max && b.queued.Load() == 0 {
		return false
	}
	cost := int64(deliveryOverhead)
	if d.msg.holders.Add(1) == 1 {
		cost += heldCost(d.msg)
	}
	b.bytes.Add(cost)
	return true
}

// releaseLocked undoes chargeLocked for a delivery sess no longer holds.
func (s *Server) releaseLocked(d delivery) {
	cost := int64(deliveryOverhead)
	if d.msg.holders.Add(-1) == 0 {
		cost += heldCost(d.msg)
	}
	s.budget.bytes.Add(-cost)
}

// queuePushLocked appends a charged delivery to sess's queue, and reports
// false, queueing nothing, when the store refused it for space: the queue
// in memory and the store's hold the same messages in the same order,
// which the moves in flight (SendQueued) and drops (Dequeue) of its head
// depend on. The caller holds sess.mu and releases what was refused.
func (s *Server) queuePushLocked(sess *session, d delivery) (queued bool) {
	if s.persistDelivery(sess, persist.Enqueue, d) {
		return false
	}
	b := &s.budget
	b.mu.Lock()
	b.lastSeq++
	d.seq = b.lastSeq
	if len(sess.queue) == 0 {
		sess.headSeq.Store(d.seq) // before the ref exists, so it is never seen stale
	}
	b.order = append(b.order, queuedRef{sess, d.seq})
	b.queued.Add(1)
	if n := b.queued.Load(); int64(len(b.order)) > 2*n+1024 {
		live := b.order[:0]
		for _, r := range b.order {
			if r.live() {
				live = append(live, r)
			}
		}
		clear(b.order[len(live):]) // let the stale sessions go
		b.order = live
	}
	b.mu.Unlock()
	sess.queue = append(sess.queue, d)
	return true
}

// queuePopLocked removes and returns the head of sess's queue, still
// charged, in memory only: the caller stages what became of it, in one
// record — persist.SendQueued when it goes in flight, persist.Dequeue when
// it is dropped (see queueDropLocked) — since a removal and a re-add as
// two records would lose the message from the store whenever the store,
// full, refused the re-add. The caller holds sess.mu.
func (s *Server) queuePopLocked(sess *session) delivery {
	d := sess.queue[0]
	sess.queue[0] = delivery{}
	sess.queue = sess.queue[1:]
	if len(sess.queue) > 0 {
		sess.headSeq.Store(sess.queue[0].seq)
	} else {
		sess.queue = nil // let the backing array go
		sess.headSeq.Store(math.MaxUint64)
	}
	s.budget.queued.Add(-1)
	return d
}

// queueDropLocked drops the head of sess's queue. The caller holds sess.mu.
func (s *Server) queueDropLocked(sess *session) {
	s.releaseLocked(s.queuePopLocked(sess))
	s.persistSessionOp(sess, persist.Dequeue(sess.clientID))
}

// releaseAllLocked releases everything a discarded session held.
func (s *Server) releaseAllLocked(sess *session) {
	for _, m := range sess.inflight {
		s.releaseLocked(m.delivery)
	}
	for _, d := range sess.queue {
		s.releaseLocked(d)
	}
	s.budget.queued.Add(-int64(len(sess.queue)))
	sess.headSeq.Store(math.MaxUint64)
}

// evictOldest drops the oldest queued deliveries of any session while the
// budget is exceeded. The caller holds no session lock.
func (s *Server) evictOldest() {
	b := &s.budget
	for b.bytes.Load() > b.max {
		b.mu.Lock()
		var oldest queuedRef
		for len(b.order) > 0 && oldest.sess == nil {
			if r := b.order[0]; r.live() {
				oldest = r
			}
			b.order[0] = queuedRef{}
			b.order = b.order[1:]
		}
		b.mu.Unlock()
		if oldest.sess == nil {
			return // all is in flight
		}
		sess := oldest.sess
		sess.mu.Lock()
		// Sent or dropped meanwhile, it is no longer the head: then it is
		// gone already.
		if len(sess.queue) > 0 && sess.queue[0].seq == oldest.seq {
			s.queueDropLocked(sess)
			s.stats.queueEvicted.Add(1)
		}
		sess.mu.Unlock()
	}
}
