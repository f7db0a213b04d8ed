package persist

import "slices"

// Message is an application message held for a session, or retained.
// Props are the MQTT 5.0 properties as the broker encodes them (opaque
// here; nil for none). The Store keeps the slices it is given: callers
// must not modify them afterwards (the broker's messages are immutable).
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	Props   []byte
	// ExpireAt is when the message expires (MQTT 5.0 Message Expiry
	// Interval), in Unix nanoseconds; 0: never. Absolute, so that a
	// restart does not give the message a new lease.
	ExpireAt int64
}

// Subscription is one filter of a session. Options is the broker's
// options byte (QoS in bits 0–1; MQTT 5.0 No Local, Retain As Published
// and Retain Handling above them), Identifier the MQTT 5.0 subscription
// identifier (0: none); both are kept as given.
type Subscription struct {
	Options    byte
	Identifier uint32
}

// Inflight is a QoS 1 or 2 message sent to the client and not yet
// acknowledged.
type Inflight struct {
	Message
	PacketID uint16
	// Released: QoS 2, PUBREC received and PUBREL sent; only the PUBREL
	// is resent.
	Released bool
}

// SessionInfo is what a session is besides its contents.
type SessionInfo struct {
	ClientID string
	// ExpiryInterval is the session expiry interval in seconds (MQTT 5.0;
	// the broker's translation for 3.1.1), kept as given.
	ExpiryInterval uint32
	// ExpireAt is when the offline session expires, in Unix nanoseconds;
	// 0 while connected or when it never expires.
	ExpireAt int64
}

// Session is a persistent session as stored.
type Session struct {
	SessionInfo
	Subscriptions map[string]Subscription
	Queue         []Message  // oldest first
	Inflight      []Inflight // in the order sent
	// Unreleased are the ids of inbound QoS 2 messages delivered onward
	// whose PUBREL has not come yet.
	Unreleased map[uint16]struct{}
}

// State is the broker's durable state: what Open recovered.
type State struct {
	Retained map[string]Message // by topic
	Sessions map[string]*Session
}

func newState() *State {
	return &State{Retained: map[string]Message{}, Sessions: map[string]*Session{}}
}

// apply makes one record's change to the state. Records for a session the
// state does not have are ignored: the session was deleted after they
// were staged (or before a crash cut the journal), and so is their effect.
// apply never fails: a record that decoded is applicable. It returns the
// change of the state's encoded size (liveBytes), computed by sizeDelta.
func (st *State) apply(rec *record) {
	switch rec.kind {
	case kindSetRetained:
		st.Retained[rec.msg.Topic] = rec.msg
	case kindDeleteRetained:
		delete(st.Retained, rec.msg.Topic)
	case kindPutSession:
		if ss := st.Sessions[rec.info.ClientID]; ss != nil {
			ss.SessionInfo = rec.info
			return
		}
		st.Sessions[rec.info.ClientID] = &Session{SessionInfo: rec.info}
	case kindDeleteSession:
		delete(st.Sessions, rec.info.ClientID)
	}
	ss := st.Sessions[rec.info.ClientID]
	if ss == nil {
		return
	}
	switch rec.kind {
	case kindSubscribe:
		if ss.Subscriptions == nil {
			ss.Subscriptions = map[string]Subscription{}
		}
		ss.Subscriptions[rec.msg.Topic] = rec.sub
	case kindUnsubscribe:
		delete(ss.Subscriptions, rec.msg.Topic)
	case kindEnqueue:
		ss.Queue = append(ss.Queue, rec.msg)
	case kindDequeue:
		if len(ss.Queue) > 0 {
			ss.Queue[0] = Message{}
			ss.Queue = ss.Queue[1:]
		}
	case kindSendQueued:
		if len(ss.Queue) > 0 {
			m := ss.Queue[0]
			ss.Queue[0] = Message{}
			ss.Queue = ss.Queue[1:]
			ss.Inflight = append(ss.Inflight, Inflight{Message: m, PacketID: rec.id})
		}
	case kindSend:
		ss.Inflight = append(ss.Inflight, Inflight{Message: rec.msg, PacketID: rec.id, Released: rec.released})
	case kindReleased:
		if i := ss.findInflight(rec.id); i >= 0 {
			ss.Inflight[i].Released = true
		}
	case kindAcked:
		if i := ss.findInflight(rec.id); i >= 0 {
			ss.Inflight = slices.Delete(ss.Inflight, i, i+1) // clears the tail: no payload is pinned
		}
	case kindHoldInbound:
		if ss.Unreleased == nil {
			ss.Unreleased = map[uint16]struct{}{}
		}
		ss.Unreleased[rec.id] = struct{}{}
	case kindReleaseInbound:
		delete(ss.Unreleased, rec.id)
	}
}

func (ss *Session) findInflight(id uint16) int {
	for i := range ss.Inflight {
		if ss.Inflight[i].PacketID == id {
			return i
		}
	}
	return -1
}
