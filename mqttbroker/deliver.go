package mqttbroker

import (
	"slices"

	"github.com/presenced/presenced/mqttbroker/persist"
)

// Outbound message flow to a session: QoS 0 goes straight to the connection
// (or nowhere while offline); QoS 1 and 2 fill an in-flight window of
// InflightWindow messages and wait in a bounded queue beyond it.

// deliver hands one message to a session, then makes room in the session
// budget if it is exceeded. It reports whether the store refused, for
// space, to hold the message for the session, which then does not have it
// either (see deliverLocked).
func (s *Server) deliver(sess *session, d delivery) (noSpace bool) {
	sess.mu.Lock()
	noSpace = s.deliverLocked(sess, d)
	sess.mu.Unlock()
	if s.budget.bytes.Load() > s.budget.max {
		s.evictOldest()
	}
	return noSpace
}

// deliverLocked is deliver under sess.mu. A QoS 1 or 2 message the store
// refuses for space is neither queued nor sent to a persistent session:
// the publisher is refused (v5: PUBACK 0x97, see handlePublish), and what
// the session holds in memory stays what it holds on disk.
func (s *Server) deliverLocked(sess *session, d delivery) (noSpace bool) {
	if sess.discarded {
		return false
	}
	if d.msg.props.has(propMessageExpiry) && d.msg.props.expired(s.cfg.Now().UnixNano()) {
		s.stats.messagesExpired.Add(1)
		return false
	}
	c := sess.conn
	if d.qos == 0 {
		if c == nil {
			return false // QoS 0 is not kept for offline clients
		}
		var ok bool
		v5 := c.v5 != nil
		var ids []uint32
		if v5 {
			ids = sess.subscriptionIDsLocked(d.msg.topic)
		}
		if d.retain || ids != nil {
			// Not the shared encoding: the retain flag or the
			// Subscription Identifiers are this session's own.
			props := d.msg.props.at(s.cfg.Now().UnixNano()).withSubscriptionIDs(ids)
			wire := (&publishPacket{Topic: d.msg.topic, Payload: d.msg.payload, Retain: d.retain, V5: v5, Props: props}).appendTo(nil)
			ok = s.fits(c, len(wire)) && c.enqueue(wire, nil, true)
		} else {
			w := d.msg.qos0Wire()
			if v5 {
				w = d.msg.qos0WireV5()
			}
			ok = s.fits(c, len(w.wire)) && c.enqueue(w.wire, w, true)
		}
		if ok {
			s.stats.messagesOut.Add(1)
		}
		return false
	}
	if !s.chargeLocked(d) {
		s.stats.queueEvicted.Add(1) // the budget is all in flight: the newest goes
		return false
	}
	if c != nil && len(sess.queue) == 0 && len(sess.inflight) < c.inflightWindow() {
		return s.sendLocked(sess, c, d, false)
	}
	if len(sess.queue) >= s.cfg.MaxQueuedMessages {
		s.queueDropLocked(sess) // drop the oldest
		s.stats.queueDropped.Add(1)
	}
	if !s.queuePushLocked(sess, d) {
		s.releaseLocked(d)
		return true
	}
	return false
}

// sendLocked puts d in flight and queues its PUBLISH on c; queued says d
// was the head of sess's queue, just popped. A message larger than a v5
// client's Maximum Packet Size is dropped as if delivered
// [MQTT-3.1.2-25]. It reports whether the store refused d for space, which
// only a message not queued before can be: a queued one moves in flight
// with persist.SendQueued, which the store never refuses, so a message
// acknowledged to its publisher stays durable however full the store is.
func (s *Server) sendLocked(sess *session, c *conn, d delivery, queued bool) (noSpace bool) {
	var now int64 // read only for a message that can expire
	if d.msg.props.has(propMessageExpiry) {
		if now = s.cfg.Now().UnixNano(); d.msg.props.expired(now) { // expired while queued [MQTT-3.3.2-5]
			s.dropLocked(sess, d, queued)
			s.stats.messagesExpired.Add(1)
			return false
		}
	}
	m := &inflightMessage{delivery: d, id: sess.nextIDLocked()}
	wire := m.wire(sess, false, c.v5 != nil, now)
	if !s.fits(c, len(wire)) {
		s.dropLocked(sess, d, queued)
		return false
	}
	if queued {
		s.persistSessionOp(sess, persist.SendQueued(sess.clientID, m.id))
	} else if s.persistedSession(sess) && s.persist.stage(persist.Send(sess.clientID, m.id, persistedMessage(d.msg, d.qos, d.retain))) {
		s.releaseLocked(d) // staged before it is sent, so that a refusal sends nothing
		return true
	}
	sess.inflight = append(sess.inflight, m)
	if c.enqueue(wire, nil, false) {
		s.stats.messagesOut.Add(1)
	}
	return false
}

// dropLocked releases d, which sendLocked did not send; when it was the
// head of sess's queue the store drops it there too.
func (s *Server) dropLocked(sess *session, d delivery, queued bool) {
	s.releaseLocked(d)
	if queued {
		s.persistSessionOp(sess, persist.Dequeue(sess.clientID))
	}
}

// wire encodes the PUBLISH of an in-flight message; dup marks a
// redelivery [MQTT-3.3.1-1].
// now (Unix ns) lowers the Message Expiry Interval by the wait; sess
// gives the Subscription Identifiers. The caller holds sess.mu.
func (m *inflightMessage) wire(sess *session, dup, v5 bool, now int64) []byte {
	p := &publishPacket{Dup: dup, QoS: m.qos, Retain: m.retain, Topic: m.msg.topic, ID: m.id, Payload: m.msg.payload}
	if v5 {
		p.V5, p.Props = true, m.msg.props.at(now).withSubscriptionIDs(sess.subscriptionIDsLocked(m.msg.topic))
	}
	return p.appendTo(nil)
}

// fillWindowLocked moves queued messages in flight while the window allows.
func (s *Server) fillWindowLocked(sess *session) {
	c := sess.conn
	for c != nil && len(sess.queue) > 0 && len(sess.inflight) < c.inflightWindow() {
		s.sendLocked(sess, c, s.queuePopLocked(sess), true)
	}
}

// resume sends, after CONNACK, what a resumed session owes its client: the
// unacknowledged messages again, with DUP set, and PUBRELs for those
// already received [MQTT-4.4.0-1]; then the queue.
func (s *Server) resume(c *conn) {
	sess := c.sess
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if sess.owner != c {
		return
	}
	// From now on messages go to c. Everything in flight predates it, so
	// the resent messages keep their original order [MQTT-4.6.0-1].
	sess.conn = c
	kept := sess.inflight[:0]
	for _, m := range sess.inflight {
		var wire []byte
		if m.released {
			wire = (&ackPacket{Type: typePubrel, ID: m.id}).appendTo(nil)
		} else {
			wire = m.wire(sess, true, c.v5 != nil, s.cfg.Now().UnixNano())
			if !s.fits(c, len(wire)) { // [MQTT-3.1.2-25]
				s.releaseLocked(m.delivery)
				s.persistSessionOp(sess, persist.Acked(sess.clientID, m.id))
				continue
			}
			s.stats.messagesOut.Add(1)
		}
		kept = append(kept, m)
		c.enqueue(wire, nil, false)
	}
	clear(sess.inflight[len(kept):])
	sess.inflight = kept
	s.fillWindowLocked(sess)
}

// acknowledge handles PUBACK (QoS 1) and PUBCOMP (QoS 2): the message leaves
// the window and a queued one may take its place. Unknown ids are ignored.
func (s *Server) acknowledge(sess *session, id uint16, qos byte) {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	i := sess.findLocked(id)
	if i < 0 || sess.inflight[i].qos != qos || (qos == 2 && !sess.inflight[i].released) {
		return
	}
	s.releaseLocked(sess.inflight[i].delivery)
	s.persistSessionOp(sess, persist.Acked(sess.clientID, id))
	sess.inflight = slices.Delete(sess.inflight, i, i+1) // clears the tail: no stale message is pinned
	s.fillWindowLocked(sess)
}

// received handles PUBREC: the client has the QoS 2 message; from now on
// only PUBREL is resent, never the PUBLISH [MQTT-4.3.3-1].
func (s *Server) received(sess *session, id uint16) {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if i := sess.findLocked(id); i >= 0 && sess.inflight[i].qos == 2 {
		sess.inflight[i].released = true
		s.persistSessionOp(sess, persist.Released(sess.clientID, id)) // staged before the PUBREL goes out
	}
}

// fits reports whether a packet of n bytes may go to c (see fitsClient),
// counting the messages that may not.
func (s *Server) fits(c *conn, n int) bool {
	if c.fitsClient(n) {
		return true
	}
	s.stats.tooLargeForPeer.Add(1)
	return false
}
