package mqttbroker

import (
	"github.com/presenced/presenced/presence"
)

// handle acts on one packet received after CONNECT.
func (c *conn) handle(p packet) error {
	s := c.s
	switch p := p.(type) {
	case *publishPacket:
		return c.handlePublish(p)
	case *ackPacket:
		switch p.Type {
		case typePuback:
			s.acknowledge(c.sess, p.ID, 1)
		case typePubrec:
			s.received(c.sess, p.ID)
			return c.send(&ackPacket{Type: typePubrel, ID: p.ID}) // [MQTT-4.3.3-1]
		case typePubrel:
			c.sess.mu.Lock()
			delete(c.sess.unreleased, p.ID)
			c.sess.mu.Unlock()
			return c.send(&ackPacket{Type: typePubcomp, ID: p.ID}) // [MQTT-4.3.3-2]
		case typePubcomp:
			s.acknowledge(c.sess, p.ID, 2)
		default: // UNSUBACK
			return malformed("MQTT-2.2.1", "client sent %s, a server-only packet", p.Type)
		}
		return nil
	case *subscribePacket:
		return c.handleSubscribe(p)
	case *unsubscribePacket:
		return c.handleUnsubscribe(p)
	case *emptyPacket:
		switch p.Type {
		case typePingreq:
			return c.send(&emptyPacket{Type: typePingresp}) // [MQTT-3.12.4-1]
		case typeDisconnect:
			// [MQTT-3.14.4-3] discard the will without publishing it.
			c.will = nil
			c.disconnectSent = true
			s.emit(s.event(c, presence.EventDisconnect))
			return errDisconnected // the server closes the connection if the client has not [MQTT-3.14.4]
		}
	case *connectPacket:
		return malformed("MQTT-3.1.0-2", "second CONNECT")
	}
	// CONNACK, SUBACK, UNSUBACK, PINGRESP travel only server to client.
	return malformed("MQTT-2.2.1", "client sent %s, a server-only packet", p.kind())
}

// handlePublish routes a message from the client and acknowledges it:
// PUBACK for QoS 1 [MQTT-4.3.2-2], PUBREC for QoS 2 [MQTT-4.3.3-2].
func (c *conn) handlePublish(p *publishPacket) error {
	s := c.s
	s.stats.messagesIn.Add(1)
	deliverOnward := true
	if p.QoS == 2 {
		sess := c.sess
		sess.mu.Lock()
		if _, seen := sess.unreleased[p.ID]; seen {
			deliverOnward = false // a resend before PUBREL: no second delivery
		} else if len(sess.unreleased) >= s.cfg.MaxUnreleasedQoS2 {
			sess.mu.Unlock()
			return malformed("", "more than %d QoS 2 messages without PUBREL", s.cfg.MaxUnreleasedQoS2)
		} else {
			if sess.unreleased == nil {
				sess.unreleased = make(map[uint16]struct{})
			}
			sess.unreleased[p.ID] = struct{}{}
		}
		sess.mu.Unlock()
	}
	if deliverOnward && s.mayPublish(c.clientID, c.username, p.Topic) {
		s.route(&message{topic: p.Topic, payload: p.Payload, qos: p.QoS, retain: p.Retain})
	}
	switch p.QoS {
	case 1:
		return c.send(&ackPacket{Type: typePuback, ID: p.ID})
	case 2:
		return c.send(&ackPacket{Type: typePubrec, ID: p.ID})
	}
	return nil
}

// mayPublish applies the topic limits, the broker's own topics and the
// Authorizer to a PUBLISH. There is no negative acknowledgement in MQTT
// 3.1.1, so a refused message is acknowledged as usual and dropped; the
// drop is counted.
func (s *Server) mayPublish(clientID, username, topic string) bool {
	if err := s.checkTopicLimits(topic); err != nil {
		s.stats.limitRejects.Add(1)
		return false
	}
	if isPresenceTopic(topic) {
		s.stats.presenceForged.Add(1)
		return false
	}
	if s.cfg.Authorizer != nil && !s.cfg.Authorizer.CanPublish(clientID, username, topic) {
		s.stats.deniedPublishes.Add(1)
		return false
	}
	return true
}

// checkTopicLimits applies MaxTopicLength and MaxTopicLevels.
func (s *Server) checkTopicLimits(topic string) error {
	if len(topic) > s.cfg.MaxTopicLength {
		return malformed("", "topic of %d bytes exceeds the limit of %d", len(topic), s.cfg.MaxTopicLength)
	}
	if n := topicLevels(topic); n > s.cfg.MaxTopicLevels {
		return malformed("", "topic of %d levels exceeds the limit of %d", n, s.cfg.MaxTopicLevels)
	}
	return nil
}

// handleSubscribe grants, or refuses with 0x80, each filter; answers
// SUBACK with the same id [MQTT-3.8.4-2] and one code per filter
// [MQTT-3.8.4-5]; then sends the retained messages that match
// [MQTT-3.3.1-6].
func (c *conn) handleSubscribe(p *subscribePacket) error {
	s := c.s
	sess := c.sess
	codes := make([]byte, len(p.Subscriptions))
	granted := make([]subscription, 0, len(p.Subscriptions))
	for i, sub := range p.Subscriptions {
		code := s.grant(c, sub)
		codes[i] = code
		if code != subackFailure {
			granted = append(granted, subscription{Filter: sub.Filter, QoS: code})
		}
	}
	if err := c.send(&subackPacket{ID: p.ID, ReturnCodes: codes}); err != nil { // [MQTT-3.8.4-1]
		return err
	}
	for _, sub := range granted {
		// [MQTT-3.8.4-3] a repeated subscription also re-sends retained messages.
		s.retained.match(sub.Filter, func(m *message) {
			s.deliver(sess, delivery{msg: m, qos: min(m.qos, sub.QoS), retain: true})
		})
	}
	return nil
}

// grant decides one subscription and records it; it returns the SUBACK
// return code: the QoS granted (all are supported) or 0x80.
func (s *Server) grant(c *conn, sub subscription) byte {
	if s.checkTopicLimits(sub.Filter) != nil {
		s.stats.limitRejects.Add(1)
		return subackFailure
	}
	if s.cfg.Authorizer != nil && !s.cfg.Authorizer.CanSubscribe(c.clientID, c.username, sub.Filter) {
		s.stats.deniedSubscribes.Add(1)
		return subackFailure
	}
	sess := c.sess
	sess.mu.Lock()
	if _, exists := sess.subs[sub.Filter]; !exists && len(sess.subs) >= s.cfg.MaxSubscriptionsPerClient {
		sess.mu.Unlock()
		s.stats.limitRejects.Add(1)
		return subackFailure
	}
	if sess.subs == nil {
		sess.subs = make(map[string]byte)
	}
	// [MQTT-3.8.4-3] an identical filter replaces the existing subscription.
	sess.subs[sub.Filter] = sub.QoS
	sess.mu.Unlock()
	s.subs.add(sub.Filter, sess, sub.QoS)
	return sub.QoS
}

// handleUnsubscribe removes the filters [MQTT-3.10.4-1] and answers
// UNSUBACK even when none matched [MQTT-3.10.4-4], [MQTT-3.10.4-5].
func (c *conn) handleUnsubscribe(p *unsubscribePacket) error {
	sess := c.sess
	for _, filter := range p.Filters {
		sess.mu.Lock()
		_, had := sess.subs[filter]
		delete(sess.subs, filter)
		sess.mu.Unlock()
		if had {
			c.s.subs.remove(filter, sess)
		}
	}
	return c.send(&ackPacket{Type: typeUnsuback, ID: p.ID})
}
