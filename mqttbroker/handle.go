package mqttbroker

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/presenced/presenced/mqttbroker/persist"
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
			if p.Reason >= 0x80 {
				// A v5 client refused the message: its flow ends here, no
				// PUBREL [MQTT-4.3.3-4].
				s.acknowledge(c.sess, p.ID, 2)
				return nil
			}
			return c.send(&ackPacket{Type: typePubrel, ID: p.ID}) // [MQTT-4.3.3-1]
		case typePubrel:
			c.sess.mu.Lock()
			_, known := c.sess.unreleased[p.ID]
			delete(c.sess.unreleased, p.ID)
			if known {
				s.persistSessionOp(c.sess, persist.ReleaseInbound(c.sess.clientID, p.ID))
			}
			c.sess.mu.Unlock()
			comp := &ackPacket{Type: typePubcomp, ID: p.ID}
			if !known && c.v5 != nil {
				comp.Reason = rcPacketIDNotFound // [MQTT-3.7.2.1]
			}
			return c.send(comp) // [MQTT-4.3.3-2]
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
			return c.handleDisconnect()
		}
	case *disconnectPacket:
		return c.handleDisconnectV5(p)
	case *authPacket:
		// No authentication method was agreed in CONNECT [MQTT-4.12.0-1].
		return violation(rcProtocolError, "MQTT-4.12.0-1", "AUTH without an authentication method")
	case *connectPacket:
		return violation(rcProtocolError, "MQTT-3.1.0-2", "second CONNECT")
	}
	// CONNACK, SUBACK, UNSUBACK, PINGRESP travel only server to client.
	return malformed("MQTT-2.2.1", "client sent %s, a server-only packet", p.kind())
}

// handleDisconnect handles a 3.1.1 DISCONNECT: a call of its own, so
// that its event stays out of handle's frame (see Server.emit).
//
//go:noinline
func (c *conn) handleDisconnect() error {
	// [MQTT-3.14.4-3] discard the will without publishing it.
	c.forgetWill()
	c.disconnectSent = true
	var e presence.Event
	c.s.event(&e, c, presence.EventDisconnect)
	c.s.emit(&e)
	return errDisconnected // the server closes the connection if the client has not [MQTT-3.14.4]
}

// handlePublish routes a message from the client and acknowledges it:
// PUBACK for QoS 1 [MQTT-4.3.2-2], PUBREC for QoS 2 [MQTT-4.3.3-2].
func (c *conn) handlePublish(p *publishPacket) error {
	s := c.s
	if c.v5 != nil {
		if p.Props.has(propSubscriptionID) {
			// Only the server sends Subscription Identifiers [MQTT-3.3.4-6].
			return violation(rcProtocolError, "MQTT-3.3.4-6", "PUBLISH from a client with a subscription identifier")
		}
		if err := c.resolveTopicAlias(p); err != nil {
			return err
		}
	}
	s.stats.messagesIn.Add(1)
	mark := s.persist.mark()
	deliverOnward, noSpace := true, false
	if p.QoS == 2 {
		sess := c.sess
		sess.mu.Lock()
		if _, seen := sess.unreleased[p.ID]; seen {
			deliverOnward = false // a resend before PUBREL: no second delivery
		} else if len(sess.unreleased) >= s.cfg.MaxUnreleasedQoS2 {
			sess.mu.Unlock()
			// Our Receive Maximum, for a v5 client [MQTT-3.3.4-9].
			return violation(rcReceiveMaximumExceeded, "MQTT-3.3.4-9", "more than %d QoS 2 messages without PUBREL", s.cfg.MaxUnreleasedQoS2)
		} else {
			if sess.unreleased == nil {
				sess.unreleased = make(map[uint16]struct{})
			}
			sess.unreleased[p.ID] = struct{}{}
			// Durable by the barrier before PUBREC. Refused for space, the
			// message is refused (not delivered) below.
			noSpace = s.persistSessionOp(sess, persist.HoldInbound(sess.clientID, p.ID))
		}
		sess.mu.Unlock()
	}
	var refusal byte
	if deliverOnward && !noSpace {
		if refusal = s.publishRefusal(c.clientID, c.username, p.Topic); refusal == rcSuccess && !validPayloadFormat(p.Props, p.Payload) {
			refusal = rcPayloadFormatInvalid // [MQTT-3.3.2-4] checked, as a server may
		}
		if refusal == rcSuccess {
			noSpace = s.route(&message{topic: p.Topic, payload: p.Payload, qos: p.QoS, retain: p.Retain, props: p.Props.forwarded()}, c.sess)
		}
	}
	if p.QoS > 0 {
		// Durable before acknowledged: what routing queued for persistent
		// sessions or retained (and the QoS 2 id) is on disk first.
		if err := s.persist.barrier(mark); err != nil {
			c.setReason(reasonInternalError)
			return fmt.Errorf("make a publish durable: %w", err)
		}
		if refusal == rcSuccess && noSpace {
			// The store was full for a record this message needed; no
			// session it was refused for holds it (see route).
			if c.v5 == nil { // 3.1.1 has no negative PUBACK: close
				if p.QoS == 2 && deliverOnward {
					// The client sends it again: it must not be taken for
					// a duplicate of a message never delivered.
					c.forgetInbound(p.ID)
				}
				c.setReason(reasonInternalError)
				return fmt.Errorf("publish to %q: %w", p.Topic, persist.ErrNoSpace)
			}
			refusal = rcQuotaExceeded
		}
	}
	ack := &ackPacket{ID: p.ID}
	if c.v5 != nil {
		ack.Reason = refusal // a v5 client learns why [MQTT-3.4.2.1]
	}
	switch p.QoS {
	case 1:
		ack.Type = typePuback
		return c.send(ack)
	case 2:
		if ack.Reason >= 0x80 {
			// A refusing PUBREC ends the flow: no PUBREL follows [MQTT-4.3.3-4].
			c.forgetInbound(p.ID)
		}
		ack.Type = typePubrec
		return c.send(ack)
	}
	return nil
}

// forgetInbound drops the inbound QoS 2 packet id, awaiting PUBREL, of a
// message that was refused.
func (c *conn) forgetInbound(id uint16) {
	sess := c.sess
	sess.mu.Lock()
	delete(sess.unreleased, id)
	c.s.persistSessionOp(sess, persist.ReleaseInbound(sess.clientID, id))
	sess.mu.Unlock()
}

// mayPublish reports whether publishRefusal lets a message through.
func (s *Server) mayPublish(clientID, username, topic string) bool {
	return s.publishRefusal(clientID, username, topic) == rcSuccess
}

// publishRefusal applies the topic limits, the broker's own topics and the
// Authorizer to a PUBLISH; it returns 0, or the MQTT 5.0 Reason Code of
// the refusal. There is no negative acknowledgement in MQTT 3.1.1, so a
// refused message is acknowledged as usual there and dropped; the drop is
// counted.
func (s *Server) publishRefusal(clientID, username, topic string) byte {
	if err := s.checkTopicLimits(topic); err != nil {
		s.stats.limitRejects.Add(1)
		return rcTopicNameInvalid
	}
	if isPresenceTopic(topic) {
		s.stats.presenceForged.Add(1)
		return rcNotAuthorized
	}
	if s.cfg.Authorizer != nil && !s.cfg.Authorizer.CanPublish(clientID, username, topic) {
		s.stats.deniedPublishes.Add(1)
		return rcNotAuthorized
	}
	return rcSuccess
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
	if p.V5 {
		if err := checkSubscribeV5(p); err != nil {
			return err
		}
	}
	var subID uint32 // at most one [MQTT-3.8.2.1.2]
	if p.Props.has(propSubscriptionID) {
		subID = p.Props.SubscriptionIDs[0]
	}
	mark, refusedBefore := s.persist.mark(), s.persist.refusedCount()
	codes := make([]byte, len(p.Subscriptions))
	granted := make([]subscription, 0, len(p.Subscriptions))
	for i, sub := range p.Subscriptions {
		code, code5, existed := s.grant(c, sub, subID)
		codes[i] = code
		if p.V5 && code == subackFailure {
			codes[i] = code5
		}
		switch {
		case code == subackFailure:
		case p.V5 && strings.HasPrefix(sub.Filter, "$share/"):
			// No retained messages for a shared subscription (as mosquitto and
			// EMQX do): the share, not this session, is the subscriber.
		case sub.Options&optRetainHandling == 0x20:
			// Retain Handling 2: no retained messages [MQTT-3.3.1-11].
		case sub.Options&optRetainHandling == 0x10 && existed:
			// 1: only for a new subscription [MQTT-3.3.1-10].
		default:
			granted = append(granted, subscription{Filter: sub.Filter, QoS: code})
		}
	}
	if err := s.persist.barrier(mark); err != nil { // the subscriptions are durable before SUBACK
		c.setReason(reasonInternalError)
		return fmt.Errorf("make subscriptions durable: %w", err)
	}
	if s.persist.refusedCount() != refusedBefore {
		// The store was full: the subscriptions are not durable, so no
		// SUBACK may acknowledge them; the connection closes (v5: DISCONNECT
		// 0x83) and the client subscribes again once there is room.
		c.setReason(reasonInternalError)
		return fmt.Errorf("subscribe: %w", persist.ErrNoSpace)
	}
	if err := c.send(&subackPacket{ID: p.ID, ReturnCodes: codes, V5: p.V5}); err != nil { // [MQTT-3.8.4-1]
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
// return code: the QoS granted (all are supported) or 0x80, and for a
// refusal the MQTT 5.0 Reason Code that says why; existed reports that the
// subscription replaced one of the same filter. The subscription tree
// keeps the QoS with the v5 No Local and Retain As Published bits (see
// route); the session keeps a v5 Subscription Identifier, subID (0: none),
// which replaces the one the filter had [MQTT-3.8.4-3].
func (s *Server) grant(c *conn, sub subscription, subID uint32) (code, code5 byte, existed bool) {
	if s.checkTopicLimits(sub.Filter) != nil {
		s.stats.limitRejects.Add(1)
		return subackFailure, rcTopicFilterInvalid, false
	}
	if s.cfg.Authorizer != nil && !s.cfg.Authorizer.CanSubscribe(c.clientID, c.username, sub.Filter) {
		s.stats.deniedSubscribes.Add(1)
		return subackFailure, rcNotAuthorized, false
	}
	sess := c.sess
	sess.mu.Lock()
	_, existed = sess.subs[sub.Filter]
	if !existed && (len(sess.subs) >= s.cfg.MaxSubscriptionsPerClient || s.subs.count.Load() >= int64(s.cfg.MaxSubscriptionsTotal)) {
		sess.mu.Unlock()
		s.stats.limitRejects.Add(1)
		return subackFailure, rcQuotaExceeded, false
	}
	if sess.subs == nil {
		sess.subs = make(map[string]byte)
	}
	options := sub.QoS | sub.Options&(optNoLocal|optRetainAsPublished)
	if c.v5 != nil && strings.HasPrefix(sub.Filter, "$share/") {
		options |= optShared // (for a 3.1.1 client, a filter like any other)
	}
	// [MQTT-3.8.4-3] an identical filter replaces the existing subscription.
	sess.subs[sub.Filter] = options
	switch {
	case subID != 0:
		if sess.subIDs == nil {
			sess.subIDs = make(map[string]uint32)
		}
		sess.subIDs[sub.Filter] = subID
	case sess.subIDs != nil:
		delete(sess.subIDs, sub.Filter)
	}
	s.persistSessionOp(sess, persist.Subscribe(sess.clientID, sub.Filter, persist.Subscription{Options: options, Identifier: subID}))
	sess.mu.Unlock()
	s.subs.add(sub.Filter, sess, options)
	return sub.QoS, sub.QoS, existed
}

// handleUnsubscribe removes the filters [MQTT-3.10.4-1] and answers
// UNSUBACK even when none matched [MQTT-3.10.4-4], [MQTT-3.10.4-5].
func (c *conn) handleUnsubscribe(p *unsubscribePacket) error {
	sess := c.sess
	mark := c.s.persist.mark()
	var codes []byte // v5: one Reason Code per filter [MQTT-3.11.3-1]
	if p.V5 {
		codes = make([]byte, len(p.Filters))
	}
	for i, filter := range p.Filters {
		sess.mu.Lock()
		grant, had := sess.subs[filter]
		delete(sess.subs, filter)
		delete(sess.subIDs, filter)
		if had {
			c.s.persistSessionOp(sess, persist.Unsubscribe(sess.clientID, filter))
		}
		sess.mu.Unlock()
		if had {
			c.s.subs.remove(filter, sess, grant&optShared != 0)
		} else if p.V5 {
			codes[i] = rcNoSubscriptionExisted
		}
	}
	if err := c.s.persist.barrier(mark); err != nil {
		c.setReason(reasonInternalError)
		return fmt.Errorf("make unsubscriptions durable: %w", err)
	}
	if p.V5 {
		return c.send(&unsubackPacket{ID: p.ID, ReasonCodes: codes})
	}
	return c.send(&ackPacket{Type: typeUnsuback, ID: p.ID})
}

// checkSubscribeV5 checks the shared subscriptions of a v5 SUBSCRIBE,
// $share/{name}/{filter}: a share name without wildcards or '/'
// [MQTT-4.8.2-1], [MQTT-4.8.2-2], a filter after it, and No Local unset
// [MQTT-3.8.3-4].
func checkSubscribeV5(p *subscribePacket) error {
	for _, sub := range p.Subscriptions {
		if !strings.HasPrefix(sub.Filter, "$share/") {
			continue
		}
		name, inner := splitShared(sub.Filter)
		switch {
		case name == "" || strings.ContainsAny(name, "+#"):
			return violation(rcProtocolError, "MQTT-4.8.2-2", "shared subscription %q without a valid share name", truncateForLog(sub.Filter))
		case inner == "":
			return violation(rcProtocolError, "MQTT-4.8.2-2", "shared subscription %q without a topic filter", truncateForLog(sub.Filter))
		case sub.Options&optNoLocal != 0:
			return violation(rcProtocolError, "MQTT-3.8.3-4", "No Local on shared subscription %q", truncateForLog(sub.Filter))
		}
	}
	return nil
}

// validPayloadFormat reports whether a payload that says it is UTF-8
// (Payload Format Indicator 1) is well-formed UTF-8.
func validPayloadFormat(p *properties, payload []byte) bool {
	return !p.has(propPayloadFormat) || p.PayloadFormat == 0 || utf8.Valid(payload)
}
