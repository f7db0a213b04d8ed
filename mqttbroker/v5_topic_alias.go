package mqttbroker

import "encoding/binary"

// Outbound Topic Aliases [MQTT-3.3.2.3.4]. A v5 client whose CONNECT has a
// Topic Alias Maximum above 0 is sent aliases: the first PUBLISH of a
// topic carries the topic and a new alias, later ones an empty topic and
// the alias. When every alias is taken, the least recently sent topic's
// alias is given to the new topic (a PUBLISH with a topic and an alias
// already in use sets it anew [MQTT-3.3.2-12]).
//
// Aliases are applied as packets reach the socket, under the write lock
// (writeLocked): the wire order is the order the client learns them in,
// whichever goroutine encoded the packet; and the QoS 0 encoding shared by
// every subscriber of a message stays untouched (the aliased PUBLISH is a
// copy). A mapping lives as long as its connection [MQTT-3.3.2-7]: a
// resumed session starts without aliases.

// maxOutboundTopicAliases caps the aliases assigned on one connection,
// whatever the client's Topic Alias Maximum: with topics of at most
// MaxTopicLength bytes that is 16 × MaxTopicLength (16 KiB with the
// defaults) per v5 connection that takes aliases [MQTT-3.3.2-11].
const maxOutboundTopicAliases = 16

// outboundAliases is the server's side of a connection's Topic Aliases.
type outboundAliases struct {
	max     int          // min(client's Topic Alias Maximum, maxOutboundTopicAliases)
	entries []aliasEntry // alias i+1 names entries[i].topic
	clock   uint64       // PUBLISHes aliased so far
}

type aliasEntry struct {
	topic string
	used  uint64 // clock when last sent
}

// apply returns wire, one encoded v5 packet, with a Topic Alias if it is a
// PUBLISH: a copy, the original when it is no PUBLISH or the alias would
// take it above limit, the client's Maximum Packet Size (0: none)
// [MQTT-3.1.2-24].
func (a *outboundAliases) apply(wire []byte, limit int) []byte {
	if len(wire) < 2 || packetType(wire[0]>>4) != typePublish {
		return wire
	}
	n, used, err := decodeRemainingLength(wire[1:])
	body := wire[1+used:]
	if err != nil || used == 0 || n != len(body) || len(body) < 2 {
		return wire
	}
	topicLen := int(binary.BigEndian.Uint16(body))
	idLen := 0
	if wire[0]&0x06 != 0 {
		idLen = 2 // QoS 1 or 2: a Packet Identifier follows the topic
	}
	if topicLen == 0 || len(body) < 2+topicLen+idLen {
		return wire
	}
	topic := body[2 : 2+topicLen]
	id := body[2+topicLen : 2+topicLen+idLen]
	r := fieldReader{b: body[2+topicLen+idLen:]}
	propLen, err := decodeVarInt(&r)
	if err != nil || int(propLen) > len(r.b) {
		return wire
	}
	propBody, payload := r.b[:propLen], r.b[propLen:]

	alias, known := a.slot(topic)
	sentTopic := topic
	if known {
		sentTopic = nil // [MQTT-3.3.2-12] the alias names it
	}
	newPropLen := int(propLen) + 3 // Topic Alias: identifier and two bytes
	newLen := 2 + len(sentTopic) + idLen + remainingLengthSize(newPropLen) + newPropLen + len(payload)
	total := 1 + remainingLengthSize(newLen) + newLen
	if newLen > maxRemainingLength || limit > 0 && total > limit {
		return wire
	}
	a.use(alias, topic, known)

	out := make([]byte, 0, total)
	out = appendRemainingLength(append(out, wire[0]), newLen)
	out = append(appendUint16(out, uint16(len(sentTopic))), sentTopic...)
	out = append(out, id...)
	out = appendVarInt(out, uint32(newPropLen))
	out = appendUint16(append(out, propTopicAlias), alias)
	out = append(out, propBody...)
	return append(out, payload...)
}

// slot returns the alias of topic and known true when it has one, else the
// alias to give it: a free one, or the least recently sent.
func (a *outboundAliases) slot(topic []byte) (alias uint16, known bool) {
	oldest := 0
	for i := range a.entries {
		if a.entries[i].topic == string(topic) {
			return uint16(i + 1), true
		}
		if a.entries[i].used < a.entries[oldest].used {
			oldest = i
		}
	}
	if len(a.entries) < a.max {
		return uint16(len(a.entries) + 1), false
	}
	return uint16(oldest + 1), false
}

// use records that alias is sent for topic; known says it already named it.
func (a *outboundAliases) use(alias uint16, topic []byte, known bool) {
	a.clock++
	i := int(alias) - 1
	if i == len(a.entries) {
		if a.entries == nil {
			a.entries = make([]aliasEntry, 0, a.max)
		}
		a.entries = append(a.entries, aliasEntry{})
	}
	if !known {
		a.entries[i].topic = string(topic)
	}
	a.entries[i].used = a.clock
}
