package mqttbroker

// route delivers a message to every matching subscription and keeps it if
// it is retained.
func (s *Server) route(m *message) {
	if m.retain {
		// [MQTT-3.3.1-5] store it (replacing the previous one); an empty
		// payload removes the retained message [MQTT-3.3.1-10].
		change := s.retained.set(m)
		s.stats.retained.Add(int64(change.count))
		s.stats.retainedBytes.Add(change.bytes)
		if change.refused {
			// Still delivered below: the budget limits what is kept, not
			// what passes through.
			s.stats.retainedRefused.Add(1)
			s.log.Warn("mqtt retained message not stored: retained budget full",
				"max_messages", s.cfg.MaxRetainedMessages, "max_bytes", s.cfg.MaxRetainedBytes)
		}
	}
	var r recipients
	s.subs.match(m.topic, r.add)
	r.each(func(sess *session, qos byte) {
		// [MQTT-3.3.5-1] one copy per session at the highest QoS granted by
		// its matching subscriptions, never above the message's QoS.
		s.deliver(sess, delivery{msg: m, qos: min(qos, m.qos)})
	})
}

// publishWill publishes the will of a connection that ended without
// DISCONNECT [MQTT-3.1.2-8], with its QoS and retain flag.
func (s *Server) publishWill(c *conn, w *willMessage) {
	if !s.mayPublish(c.clientID, c.username, w.Topic) {
		return
	}
	s.stats.willsPublished.Add(1)
	s.route(&message{topic: w.Topic, payload: w.Payload, qos: w.QoS, retain: w.Retain})
}

// recipients collects the sessions matching a topic with the highest QoS
// of each; a slice suffices for the usual handful, a map takes over beyond.
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
		if q, ok := r.big[sess]; !ok || qos > q {
			r.big[sess] = qos
		}
		return
	}
	for i := range r.list {
		if r.list[i].sess == sess {
			r.list[i].qos = max(r.list[i].qos, qos)
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
