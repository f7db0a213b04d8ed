package rocketmq

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/presenced/presenced/presence"
)

// Entry kinds, as consumer/outbox names them (outbox.Kind.String()).
const (
	KindEvent = "event" // Payload is a presence.Event
	KindNode  = "node"  // Payload is a presence.NodeEvent
)

// TagNode is the tag of node events; lifecycle events are tagged with
// their eventType.
const TagNode = "node"

// Entry is one durable outbox record as the forwarder sees it.
type Entry struct {
	Seq     uint64 // acknowledged through Source.Ack
	Kind    string // KindEvent or KindNode; anything else is skipped
	Payload []byte // JSON, sent as the message body unchanged
}

// Routing decides where events go.
type Routing struct {
	// Topic receives every event, unless PerGroupTopics is set; then it
	// receives the events of clients without a group (or whose group
	// cannot be part of a topic name) and the node events.
	Topic string
	// PerGroupTopics sends each client's events to Alibaba's status topic
	// of its group, "<GroupId>_MQTT" (GroupId is the client id up to "@@@").
	PerGroupTopics bool
}

func (r Routing) validate() error {
	return checkName("topic", r.Topic)
}

// topicFor returns the topic of a lifecycle event of clientID.
func (r Routing) topicFor(clientID string) string {
	if r.PerGroupTopics {
		if topic := GroupTopic(clientID); topic != "" {
			return topic
		}
	}
	return r.Topic
}

// outMessage is an outbox entry ready to send: its topic, the properties
// RocketMQ indexes and filters on, and its body. The forwarder batches and
// encodes these itself (batch.go) rather than building a
// primitive.Message, with its property map, for every event.
type outMessage struct {
	topic string
	tag   string
	// keys are space-separated, as in RocketMQ's KEYS property.
	keys string
	// shardingKey picks the queue (the channel id, or the node id).
	shardingKey string
	body        []byte
}

// message builds the message for e: tag = eventType (or "node"), keys =
// channelId (or node id and epoch), body = the payload as stored. The body
// is sent exactly as the broker wrote it, so additive fields a newer
// broker adds reach the consumer even if this code does not know them.
func (r Routing) message(e Entry) (outMessage, error) {
	switch e.Kind {
	case KindEvent:
		// Decode without validating: routing needs three fields, and an
		// event the consumer finds invalid is better parked there, where
		// operators look, than dropped here.
		ev, err := routeOf(e.Payload)
		if err != nil {
			return outMessage{}, fmt.Errorf("outbox record %d is not an event: %w", e.Seq, err)
		}
		if ev.Type == "" || ev.ChannelID == "" {
			return outMessage{}, fmt.Errorf("outbox record %d has no eventType or channelId", e.Seq)
		}
		// Events of one channel hash to one queue, so they are usually
		// consumed in order (the store does not depend on it).
		return checkSize(e, outMessage{topic: r.topicFor(ev.ClientID), tag: ev.Type, keys: ev.ChannelID, shardingKey: ev.ChannelID, body: e.Payload})
	case KindNode:
		var ne presence.NodeEvent
		if err := json.Unmarshal(e.Payload, &ne); err != nil {
			return outMessage{}, fmt.Errorf("outbox record %d is not a node event: %w", e.Seq, err)
		}
		keys := strings.Join(slices.DeleteFunc([]string{ne.Node, ne.Epoch}, func(k string) bool { return k == "" }), primitive.PropertyKeySeparator)
		return checkSize(e, outMessage{topic: r.Topic, tag: TagNode, keys: keys, shardingKey: ne.Node, body: e.Payload})
	}
	return outMessage{}, fmt.Errorf("outbox record %d has unknown kind %q", e.Seq, e.Kind)
}

// maxPropertiesBytes bounds a message's properties: RocketMQ stores their
// length in 16 bits, and a longer string would corrupt the batch it is in
// (the broker would refuse the whole request, and the forwarder would
// retry it forever). Real events carry a few dozen bytes.
const maxPropertiesBytes = 32 << 10

func checkSize(e Entry, m outMessage) (outMessage, error) {
	if n := propertiesSize(m); n > maxPropertiesBytes {
		return outMessage{}, fmt.Errorf("outbox record %d has %d bytes of properties (tag and keys); at most %d fit a RocketMQ message", e.Seq, n, maxPropertiesBytes)
	}
	return m, nil
}

// primitive returns m as the client's message, for a request of its own.
func (m outMessage) primitive() *primitive.Message {
	msg := primitive.NewMessage(m.topic, m.body)
	msg.WithTag(m.tag)
	msg.WithProperty(primitive.PropertyKeys, m.keys)
	msg.WithShardingKey(m.shardingKey)
	return msg
}
