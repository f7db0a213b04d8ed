package mqttbroker

import "slices"

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
	c := sess.conn
	if d.qos == 0 {
		if c == nil {
			return // QoS 0 is not kept for offline clients
		}
		var ok bool
		if d.retain {
			ok = c.enqueue((&publishPacket{Topic: d.msg.topic, Payload: d.msg.payload, Retain: true}).appendTo(nil), nil, true)
		} else {
			w := d.msg.qos0Wire()
			ok = c.enqueue(w.wire, w, true)
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
	if c != nil && len(sess.queue) == 0 && len(sess.inflight) < s.cfg.InflightWindow {
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
func (s *Server) sendLocked(sess *session, c *conn, d delivery) {
	m := &inflightMessage{delivery: d, id: sess.nextIDLocked()}
	sess.inflight = append(sess.inflight, m)
	if c.enqueue(m.wire(false), nil, false) {
		s.stats.messagesOut.Add(1)
	}
}

// wire encodes the PUBLISH of an in-flight message; dup marks a
// redelivery [MQTT-3.3.1-1].
func (m *inflightMessage) wire(dup bool) []byte {
	return (&publishPacket{Dup: dup, QoS: m.qos, Retain: m.retain, Topic: m.msg.topic, ID: m.id, Payload: m.msg.payload}).appendTo(nil)
}

// fillWindowLocked moves queued messages in flight while the window allows.
func (s *Server) fillWindowLocked(sess *session) {
	c := sess.conn
	for c != nil && len(sess.queue) > 0 && len(sess.inflight) < s.cfg.InflightWindow {
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
	for _, m := range sess.inflight {
		var wire []byte
		if m.released {
			wire = (&ackPacket{Type: typePubrel, ID: m.id}).appendTo(nil)
		} else {
			wire = m.wire(true)
			s.stats.messagesOut.Add(1)
		}
		c.enqueue(wire, nil, false)
	}
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
	}
}
