package mqttbroker

import (
	"slices"

	"github.com/presenced/presenced/mqttbroker/persist"
)

// Outbound message flow to a session: QoS 0 goes straight to the connection
// (or nowhere while offline); QoS 1 and 2 fill an in-flight window of
// InflightWindow messages and wait in a bounded queue beyond it.

// deliver hands one message to a session, then makes room in the session
// budget if it is exceeded.
func (s *Server) deliver(sess *session, d delivery) {
	sess.mu.Lock()
	s.deliverLocked(sess, d)
	sess.mu.Unlock()
	if s.budget.bytes.Load() > s.budget.max {
		s.evictOldest()
	}
}

func (s *Server) deliverLocked(sess *session, d delivery) {
	if sess.discarded {
		return
	}
	if d.msg.props.has(propMessageExpiry) && d.msg.props.expired(s.cfg.Now().UnixNano()) {
		s.stats.messagesExpired.Add(1)
		return
	}
	c := sess.conn
	if d.qos == 0 {
		if c == nil {
			return // QoS 0 is not kept for offline clients
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
		return
	}
	if !s.chargeLocked(d) {
		s.stats.queueEvicted.Add(1) // the budget is all in flight: the newest goes
		return
	}
	if c != nil && len(sess.queue) == 0 && len(sess.inflight) < c.inflightWindow() {
		s.sendLocked(sess, c, d)
		return
	}
	if len(sess.queue) >= s.cfg.MaxQueuedMessages {
		s.releaseLocked(s.queuePopLocked(sess)) // drop the oldest
		s.stats.queueDropped.Add(1)
	}
	s.queuePushLocked(sess, d)
}

// sendLocked puts d in flight and queues its PUBLISH on c.
// A message larger than a v5 client's Maximum Packet Size is dropped as if
// delivered [MQTT-3.1.2-25].
func (s *Server) sendLocked(sess *session, c *conn, d delivery) {
	var now int64 // read only for a message that can expire
	if d.msg.props.has(propMessageExpiry) {
		if now = s.cfg.Now().UnixNano(); d.msg.props.expired(now) { // expired while queued [MQTT-3.3.2-5]
			s.releaseLocked(d)
			s.stats.messagesExpired.Add(1)
			return
		}
	}
	m := &inflightMessage{delivery: d, id: sess.nextIDLocked()}
	wire := m.wire(sess, false, c.v5 != nil, now)
	if !s.fits(c, len(wire)) {
		s.releaseLocked(d)
		return
	}
	sess.inflight = append(sess.inflight, m)
	if s.persistedSession(sess) {
		s.persist.stage(persist.Send(sess.clientID, m.id, persistedMessage(d.msg, d.qos, d.retain)))
	}
	if c.enqueue(wire, nil, false) {
		s.stats.messagesOut.Add(1)
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
		s.sendLocked(sess, c, s.queuePopLocked(sess))
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
