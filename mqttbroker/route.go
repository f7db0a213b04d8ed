package mqttbroker

import "time"

// route delivers a message to every matching subscription and keeps it if
// it is retained. from is the publisher's session (nil for the broker's
// own messages), which a No Local subscription of its own skips.
//
// It reports whether the store refused, for space, a record the message
// needed: the publisher is then refused (v5: PUBACK 0x97, see
// handlePublish). No session the refusal was for holds the message; a
// QoS 1 or 2 message refused as retained is delivered to nobody. What
// reached other sessions before the store filled stays delivered: a
// fan-out is not atomic (MQTT asks it of no server), so a publisher that
// retries may duplicate the message there, as QoS 1 allows.
func (s *Server) route(m *message, from *session) (noSpace bool) {
	if m.props.has(propMessageExpiry) {
		m.props.expiresAt = s.cfg.Now().UnixNano() + int64(m.props.MessageExpiry)*int64(time.Second)
	}
	if m.retain {
		// [MQTT-3.3.1-5] store it (replacing the previous one); an empty
		// payload removes the retained message [MQTT-3.3.1-10].
		change := s.retained.set(m)
		s.stats.retained.Add(int64(change.count))
		s.stats.retainedBytes.Add(change.bytes)
		if noSpace = s.persistRetained(m, change); noSpace && m.qos > 0 {
			return true // refused to the publisher: not delivered either
		}
		if change.refused {
			// Still delivered below: the budget limits what is kept, not
			// what passes through.
			s.stats.retainedRefused.Add(1)
			s.log.Warn("mqtt retained message not stored: retained budget full",
				"max_messages", s.cfg.MaxRetainedMessages, "max_bytes", s.cfg.MaxRetainedBytes)
		}
	}
	var r recipients
	s.subs.match(m.topic, func(sess *session, grant byte) {
		if grant&optNoLocal != 0 && sess == from {
			return // [MQTT-3.8.3-3] not to the publisher's own No Local subscription
		}
		r.add(sess, grant)
	})
	r.each(func(sess *session, grant byte) {
		// [MQTT-3.3.5-1] one copy per session at the highest QoS granted by
		// its matching subscriptions, never above the message's QoS; the
		// retain flag kept for Retain As Published [MQTT-3.3.1-12].
		if s.deliver(sess, delivery{msg: m, qos: min(grant&0x03, m.qos), retain: m.retain && grant&optRetainAsPublished != 0}) {
			noSpace = true
		}
	})
	return noSpace
}

// mergeGrants combines the grants of two subscriptions of one session that
// match a topic: the higher QoS, and Retain As Published if either has it.
func mergeGrants(a, b byte) byte {
	return max(a&0x03, b&0x03) | (a|b)&optRetainAsPublished
}

// publishWill publishes the will of a connection that ended without
// DISCONNECT [MQTT-3.1.2-8], with its QoS and retain flag. bytes is what
// it takes of s.wills: given back once it is published, or by the delayed
// will that takes it over.
func (s *Server) publishWill(c *conn, w *willMessage, bytes int64) {
	if delay := c.willDelay(w); delay > 0 && c.sess != nil {
		s.publishWillLater(c, w, delay, bytes)
		return
	}
	defer s.wills.give(bytes)
	s.publishWillNow(c.clientID, c.username, w)
}

// publishWillNow publishes a will of the client clientID, authenticated as
// username.
func (s *Server) publishWillNow(clientID, username string, w *willMessage) {
	if !s.mayPublish(clientID, username, w.Topic) {
		return
	}
	s.stats.willsPublished.Add(1)
	s.route(&message{topic: w.Topic, payload: w.Payload, qos: w.QoS, retain: w.Retain, props: w.Props.forwarded()}, nil)
}

// recipients collects the sessions matching a topic with the merged grant
// of each (highest QoS, see mergeGrants); a slice suffices for the usual
// handful, a map takes over beyond.
type recipients struct {
	list []recipient
	big  map[*session]byte
}

type recipient struct {
	sess *session
	qos  byte
}

const recipientsListMax = 16

func (r *recipients) add(sess *session, qos byte) {
	if r.big != nil {
		if q, ok := r.big[sess]; !ok {
			r.big[sess] = qos
		} else {
			r.big[sess] = mergeGrants(q, qos)
		}
		return
	}
	for i := range r.list {
		if r.list[i].sess == sess {
			r.list[i].qos = mergeGrants(r.list[i].qos, qos)
			return
		}
	}
	if len(r.list) < recipientsListMax {
		r.list = append(r.list, recipient{sess, qos})
		return
	}
	r.big = make(map[*session]byte, 2*recipientsListMax)
	for _, x := range r.list {
		r.big[x.sess] = x.qos
	}
	r.list = nil
	r.big[sess] = qos
}

func (r *recipients) each(fn func(*session, byte)) {
	for _, x := range r.list {
		fn(x.sess, x.qos)
	}
	for sess, qos := range r.big {
		fn(sess, qos)
	}
}
