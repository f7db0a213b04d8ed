package mqttbroker

import (
	"errors"
	"sync/atomic"

	"github.com/presenced/presenced/mqttbroker/persist"
)

// Persistence: with Config.Persistence set, every change of a persistent
// session (subscriptions, queued and in-flight QoS 1/2 messages, inbound
// QoS 2 ids awaiting PUBREL, expiry) and of the retained messages is
// staged in the store, under the session's lock so the journal has the
// session's order, and New rebuilds them from Config.Persisted. What an
// acknowledgement depends on is made durable before it is sent (see
// persistBarrier and the package doc of persist for each operation):
// PUBACK/PUBREC after a PUBLISH was queued for offline sessions or
// retained, SUBACK/UNSUBACK, CONNACK.

// persistence is the broker's handle on the store; nil methods do nothing,
// so the call sites need no check when persistence is off.
type persistence struct {
	store *persist.Store
	// refused counts records the store refused for space; a PUBLISH whose
	// routing raised it is refused (see handlePublish).
	refused atomic.Int64
	// staged counts stage calls, so that an acknowledgement waits only
	// when something was staged on its way (see mark).
	staged atomic.Int64
}

func (p *persistence) on() bool { return p != nil && p.store != nil }

// stage stages ops and reports whether the store refused any for space;
// a refusal is counted (and Stats of the store count it too), any other
// failure is the store's and fails every later barrier.
func (p *persistence) stage(ops ...persist.Op) (noSpace bool) {
	if !p.on() {
		return false
	}
	p.staged.Add(1)
	if _, err := p.store.Stage(ops...); errors.Is(err, persist.ErrNoSpace) {
		p.refused.Add(1)
		return true
	}
	return false
}

// refusedCount is the number of records refused for space so far.
func (p *persistence) refusedCount() int64 {
	if !p.on() {
		return 0
	}
	return p.refused.Load()
}

// mark is taken before handling a packet, for barrier.
func (p *persistence) mark() int64 {
	if !p.on() {
		return 0
	}
	return p.staged.Load()
}

// barrier waits until everything staged so far is durable, when anything
// was staged since mark (by this packet or, conservatively, another).
func (p *persistence) barrier(mark int64) error {
	if !p.on() || p.staged.Load() == mark {
		return nil
	}
	return p.store.Staged().Wait()
}

// persistedSession reports whether sess is journaled: persistent ones only.
func (s *Server) persistedSession(sess *session) bool {
	return s.persist.on() && sess != nil && !sess.clean
}

// persistedMessage is a delivery of m at qos, or a retained m.
func persistedMessage(m *message, qos byte, retain bool) persist.Message {
	pm := persist.Message{Topic: m.topic, Payload: m.payload, QoS: qos, Retain: retain}
	if m.props != nil {
		pm.Props = appendProperties(nil, m.props)
		pm.ExpireAt = m.props.expiresAt
	}
	return pm
}

// restoredMessage rebuilds a message; properties that no longer decode
// (written by a different version) are dropped rather than the message.
func restoredMessage(pm persist.Message) *message {
	m := &message{topic: pm.Topic, payload: pm.Payload, qos: pm.QoS, retain: pm.Retain}
	if len(pm.Props) > 0 {
		r := fieldReader{b: pm.Props}
		if props, err := decodeProperties(&r, typePublish); err == nil && props != nil {
			props.expiresAt = pm.ExpireAt
			m.props = props
		}
	}
	return m
}

// persistDelivery stages a record carrying d for a persistent session
// and reports whether the store refused it for space.
func (s *Server) persistDelivery(sess *session, op func(clientID string, m persist.Message) persist.Op, d delivery) (noSpace bool) {
	return s.persistedSession(sess) && s.persist.stage(op(sess.clientID, persistedMessage(d.msg, d.qos, d.retain)))
}

// persistSessionOp stages op for a persistent session and reports whether
// the store refused it for space (only records that add can be).
func (s *Server) persistSessionOp(sess *session, op persist.Op) (noSpace bool) {
	return s.persistedSession(sess) && s.persist.stage(op)
}

// persistSessionInfo stages a persistent session's existence and expiry.
func (s *Server) persistSessionInfo(sess *session) {
	s.persistSessionOp(sess, persist.PutSession(persist.SessionInfo{ClientID: sess.clientID, ExpireAt: sess.expireAt}))
}

// persistRetained stages what set did to the retained store and reports
// whether the store refused the message for space. Then it is not
// retained in memory either: the previous message of the topic is gone
// from both (the rule of the retained budget: a later subscriber is never
// given a value the publisher replaced), and a restart brings back
// nothing the running broker did not have.
func (s *Server) persistRetained(m *message, change retainedChange) (noSpace bool) {
	switch {
	case !s.persist.on():
	case len(m.payload) == 0 || change.refused && change.count < 0:
		s.persist.stage(persist.DeleteRetained(m.topic))
	case !change.refused:
		if !s.persist.stage(persist.SetRetained(persistedMessage(m, m.qos, true))) {
			return false
		}
		if removed := s.retained.unset(m); removed.count != 0 {
			s.stats.retained.Add(int64(removed.count))
			s.stats.retainedBytes.Add(removed.bytes)
			s.persist.stage(persist.DeleteRetained(m.topic)) // the previous one, if the store had it
		}
		return true
	}
	return false
}

// restore rebuilds retained messages and persistent sessions from st,
// before the server accepts anything. Sessions that were online when the
// broker stopped start their expiry now. It returns the records that drop
// from the store what the session budget had no room for, so that the
// store holds what the sessions do (queuePushLocked says why): they are
// a prefix of each queue, since the budget refuses only while nothing is
// queued.
func (s *Server) restore(st *persist.State) (dropped []persist.Op) {
	for _, pm := range st.Retained {
		m := restoredMessage(pm)
		m.retain = true
		change := s.retained.set(m)
		s.stats.retained.Add(int64(change.count))
		s.stats.retainedBytes.Add(change.bytes)
	}
	now := s.cfg.Now()
	for id, ps := range st.Sessions {
		sess := newSession(id, false)
		sess.expireAt = ps.ExpireAt
		if sess.expireAt == 0 && s.cfg.SessionExpiry > 0 {
			sess.expireAt = now.Add(s.cfg.SessionExpiry).UnixNano()
		}
		sess.mu.Lock()
		for filter, sub := range ps.Subscriptions {
			if sess.subs == nil {
				sess.subs = make(map[string]byte)
			}
			sess.subs[filter] = sub.Options
			if sub.Identifier != 0 {
				if sess.subIDs == nil {
					sess.subIDs = make(map[string]uint32)
				}
				sess.subIDs[filter] = sub.Identifier
			}
			s.subs.add(filter, sess, sub.Options)
		}
		for _, in := range ps.Inflight {
			d := delivery{msg: restoredMessage(in.Message), qos: in.QoS, retain: in.Retain}
			if !s.chargeLocked(d) {
				dropped = append(dropped, persist.Acked(id, in.PacketID))
				continue
			}
			sess.inflight = append(sess.inflight, &inflightMessage{delivery: d, id: in.PacketID, released: in.Released})
			sess.lastID = in.PacketID
		}
		for _, pm := range ps.Queue {
			d := delivery{msg: restoredMessage(pm), qos: pm.QoS, retain: pm.Retain}
			if !s.chargeLocked(d) {
				dropped = append(dropped, persist.Dequeue(id))
				continue
			}
			s.queuePushLocked(sess, d) // persistence is not on yet: nothing is staged
		}
		for pid := range ps.Unreleased {
			if sess.unreleased == nil {
				sess.unreleased = make(map[uint16]struct{})
			}
			sess.unreleased[pid] = struct{}{}
		}
		sess.mu.Unlock()
		s.sessions[id] = sess
		s.stats.sessions.Add(1)
		s.stats.persistent.Add(1)
	}
	return dropped
}
