package persist

import (
	"errors"
	"fmt"
)

// kind is the first byte of a record body. The journal and the snapshot
// use the same kinds: a snapshot is the shortest journal that builds the
// state, plus a closing kindEnd.
type kind byte

const (
	kindSetRetained    kind = 1  // topic, payload, qos, props
	kindDeleteRetained kind = 2  // topic
	kindPutSession     kind = 3  // client id, expiry interval, expire-at
	kindDeleteSession  kind = 4  // client id
	kindSubscribe      kind = 5  // client id, filter, options, identifier
	kindUnsubscribe    kind = 6  // client id, filter
	kindEnqueue        kind = 7  // client id, message
	kindDequeue        kind = 8  // client id: the head of the queue is dropped
	kindSendQueued     kind = 9  // client id, packet id: the head of the queue goes in flight
	kindSend           kind = 10 // client id, packet id, released, message: straight in flight
	kindReleased       kind = 11 // client id, packet id: PUBREC came, PUBREL sent
	kindAcked          kind = 12 // client id, packet id: PUBACK or PUBCOMP came
	kindHoldInbound    kind = 13 // client id, packet id: inbound QoS 2 delivered, PUBREL awaited
	kindReleaseInbound kind = 14 // client id, packet id: its PUBREL came
	kindEnd            kind = 15 // snapshot only: number of records before it
)

func (k kind) String() string {
	names := [...]string{"", "set-retained", "delete-retained", "put-session", "delete-session",
		"subscribe", "unsubscribe", "enqueue", "dequeue", "send-queued", "send", "released",
		"acked", "hold-inbound", "release-inbound", "end"}
	if int(k) < len(names) && k != 0 {
		return names[k]
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

// adds says whether records of kind k can make the state grow without
// bound, so are refused when the store is full. The others remove, move
// or mark what is there (a few bytes at most), and always succeed.
func (k kind) adds() bool {
	switch k {
	case kindSetRetained, kindPutSession, kindSubscribe, kindEnqueue, kindSend, kindHoldInbound:
		return true
	}
	return false
}

// record is a decoded record body. Fields a kind does not use are zero;
// msg.Topic carries the filter of subscribe and unsubscribe, and
// info.ClientID the session of every session kind.
type record struct {
	kind     kind
	info     SessionInfo
	msg      Message
	sub      Subscription
	id       uint16
	released bool
	count    uint64 // kindEnd
}

// Op is one change to the durable state, built by the functions below and
// given to Store.Stage or Store.Append.
type Op struct{ rec record }

// SetRetained stores m as the retained message of its topic, replacing any.
func SetRetained(m Message) Op { return Op{record{kind: kindSetRetained, msg: m}} }

// DeleteRetained removes the retained message of topic.
func DeleteRetained(topic string) Op {
	return Op{record{kind: kindDeleteRetained, msg: Message{Topic: topic}}}
}

// PutSession creates a session, or updates the expiry of an existing one
// (keeping its contents).
func PutSession(info SessionInfo) Op { return Op{record{kind: kindPutSession, info: info}} }

// DeleteSession removes a session and everything it holds.
func DeleteSession(clientID string) Op {
	return Op{record{kind: kindDeleteSession, info: SessionInfo{ClientID: clientID}}}
}

// Subscribe adds or replaces a session's subscription to filter.
func Subscribe(clientID, filter string, sub Subscription) Op {
	return Op{record{kind: kindSubscribe, info: SessionInfo{ClientID: clientID}, msg: Message{Topic: filter}, sub: sub}}
}

// Unsubscribe removes a session's subscription to filter.
func Unsubscribe(clientID, filter string) Op {
	return Op{record{kind: kindUnsubscribe, info: SessionInfo{ClientID: clientID}, msg: Message{Topic: filter}}}
}

// Enqueue appends m to a session's queue.
func Enqueue(clientID string, m Message) Op {
	return Op{record{kind: kindEnqueue, info: SessionInfo{ClientID: clientID}, msg: m}}
}

// Dequeue drops the oldest message of a session's queue.
func Dequeue(clientID string) Op {
	return Op{record{kind: kindDequeue, info: SessionInfo{ClientID: clientID}}}
}

// SendQueued moves the oldest queued message of a session in flight
// under packetID.
func SendQueued(clientID string, packetID uint16) Op {
	return Op{record{kind: kindSendQueued, info: SessionInfo{ClientID: clientID}, id: packetID}}
}

// Send puts m in flight under packetID without queueing it first.
func Send(clientID string, packetID uint16, m Message) Op {
	return Op{record{kind: kindSend, info: SessionInfo{ClientID: clientID}, msg: m, id: packetID}}
}

// Released marks the in-flight QoS 2 message packetID as received by the
// client (PUBREC came, PUBREL sent).
func Released(clientID string, packetID uint16) Op {
	return Op{record{kind: kindReleased, info: SessionInfo{ClientID: clientID}, id: packetID}}
}

// Acked removes the in-flight message packetID (PUBACK or PUBCOMP came, or
// the broker gave up on it).
func Acked(clientID string, packetID uint16) Op {
	return Op{record{kind: kindAcked, info: SessionInfo{ClientID: clientID}, id: packetID}}
}

// HoldInbound records an inbound QoS 2 packet id delivered onward whose
// PUBREL has not come.
func HoldInbound(clientID string, packetID uint16) Op {
	return Op{record{kind: kindHoldInbound, info: SessionInfo{ClientID: clientID}, id: packetID}}
}

// ReleaseInbound forgets an inbound QoS 2 packet id: its PUBREL came.
func ReleaseInbound(clientID string, packetID uint16) Op {
	return Op{record{kind: kindReleaseInbound, info: SessionInfo{ClientID: clientID}, id: packetID}}
}

// check refuses a record the decoder would refuse, so that no caller's
// mistake can be written as a record that stops every later replay.
func (rec *record) check() error {
	if rec.msg.QoS > 2 {
		return fmt.Errorf("stage %s: qos %d is over 2", rec.kind, rec.msg.QoS)
	}
	if rec.info.ExpireAt < 0 || rec.msg.ExpireAt < 0 {
		return fmt.Errorf("stage %s: expire-at is negative", rec.kind)
	}
	if n := len(rec.msg.Topic) + len(rec.msg.Payload) + len(rec.msg.Props) + len(rec.info.ClientID) + 64; n > maxBodyBytes {
		return fmt.Errorf("stage %s: record of about %d bytes is over %d", rec.kind, n, maxBodyBytes)
	}
	return nil
}

func appendMessage(b []byte, m *Message) []byte {
	b = appendString(b, m.Topic)
	b = appendBytes(b, m.Payload)
	b = append(b, m.QoS)
	b = appendBool(b, m.Retain)
	b = appendBytes(b, m.Props)
	return appendUvarint(b, uint64(m.ExpireAt))
}

func (r *fieldReader) message() Message {
	m := Message{Topic: r.string(), Payload: r.bytes(), QoS: r.byte(), Retain: r.bool(), Props: r.bytes(), ExpireAt: r.int63()}
	if m.QoS > 2 {
		r.fail(errors.New("qos is over 2"))
	}
	return m
}

// appendBody encodes rec onto b.
func appendBody(b []byte, rec *record) []byte {
	b = append(b, byte(rec.kind))
	switch rec.kind {
	case kindSetRetained:
		return appendMessage(b, &rec.msg)
	case kindDeleteRetained:
		return appendString(b, rec.msg.Topic)
	case kindEnd:
		return appendUvarint(b, rec.count)
	}
	b = appendString(b, rec.info.ClientID)
	switch rec.kind {
	case kindPutSession:
		b = appendUvarint(b, uint64(rec.info.ExpiryInterval))
		b = appendUvarint(b, uint64(rec.info.ExpireAt))
	case kindSubscribe:
		b = appendString(b, rec.msg.Topic)
		b = append(b, rec.sub.Options)
		b = appendUvarint(b, uint64(rec.sub.Identifier))
	case kindUnsubscribe:
		b = appendString(b, rec.msg.Topic)
	case kindEnqueue:
		b = appendMessage(b, &rec.msg)
	case kindSend:
		b = appendUvarint(b, uint64(rec.id))
		b = appendBool(b, rec.released)
		b = appendMessage(b, &rec.msg)
	case kindSendQueued, kindReleased, kindAcked, kindHoldInbound, kindReleaseInbound:
		b = appendUvarint(b, uint64(rec.id))
	}
	return b
}

// decodeBody decodes a record body. Every field is checked against what
// is left of the body, and a body with bytes left over is refused, so
// random bytes with a valid checksum cannot become a plausible record.
func decodeBody(body []byte) (record, error) {
	if len(body) == 0 {
		return record{}, errors.New("decode record: empty body")
	}
	rec := record{kind: kind(body[0])}
	r := &fieldReader{buf: body[1:]}
	switch rec.kind {
	case kindSetRetained:
		rec.msg = r.message()
	case kindDeleteRetained:
		rec.msg.Topic = r.string()
	case kindEnd:
		rec.count = r.uvarint()
	case kindPutSession, kindDeleteSession, kindSubscribe, kindUnsubscribe, kindEnqueue, kindDequeue,
		kindSendQueued, kindSend, kindReleased, kindAcked, kindHoldInbound, kindReleaseInbound:
		rec.info.ClientID = r.string()
	default:
		return record{}, fmt.Errorf("decode record: unknown %s", rec.kind)
	}
	switch rec.kind {
	case kindPutSession:
		rec.info.ExpiryInterval = r.uint32()
		rec.info.ExpireAt = r.int63()
	case kindSubscribe:
		rec.msg.Topic = r.string()
		rec.sub.Options = r.byte()
		rec.sub.Identifier = r.uint32()
	case kindUnsubscribe:
		rec.msg.Topic = r.string()
	case kindEnqueue:
		rec.msg = r.message()
	case kindSend:
		rec.id = r.uint16()
		rec.released = r.bool()
		rec.msg = r.message()
	case kindSendQueued, kindReleased, kindAcked, kindHoldInbound, kindReleaseInbound:
		rec.id = r.uint16()
	}
	if r.err == nil && len(r.buf) > 0 {
		r.fail(fmt.Errorf("%d bytes left over", len(r.buf)))
	}
	if r.err != nil {
		return record{}, fmt.Errorf("decode %s record: %w", rec.kind, r.err)
	}
	return rec, nil
}
