package rocketmq

import (
	"encoding/json"
	"fmt"
	"slices"

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

// message builds the RocketMQ message for e: tag = eventType (or "node"),
// keys = channelId (or node id and epoch), body = the payload as stored.
// The body is sent exactly as the broker wrote it, so additive fields a
// newer broker adds reach the consumer even if this code does not know them.
func (r Routing) message(e Entry) (*primitive.Message, error) {
	switch e.Kind {
	case KindEvent:
		// Decode without validating: routing needs three fields, and an
		// event the consumer finds invalid is better parked there, where
		// operators look, than dropped here.
		ev, err := routeOf(e.Payload)
		if err != nil {
			return nil, fmt.Errorf("outbox record %d is not an event: %w", e.Seq, err)
		}
		if ev.Type == "" || ev.ChannelID == "" {
			return nil, fmt.Errorf("outbox record %d has no eventType or channelId", e.Seq)
		}
		msg := primitive.NewMessage(r.topicFor(ev.ClientID), e.Payload)
		msg.WithTag(ev.Type)
		msg.WithKeys([]string{ev.ChannelID})
		// Events of one channel hash to one queue, so they are usually
		// consumed in order (the store does not depend on it).
		msg.WithShardingKey(ev.ChannelID)
		return msg, nil
	case KindNode:
		var ne presence.NodeEvent
		if err := json.Unmarshal(e.Payload, &ne); err != nil {
			return nil, fmt.Errorf("outbox record %d is not a node event: %w", e.Seq, err)
		}
		msg := primitive.NewMessage(r.Topic, e.Payload)
		msg.WithTag(TagNode)
		msg.WithKeys(slices.DeleteFunc([]string{ne.Node, ne.Epoch}, func(k string) bool { return k == "" }))
		msg.WithShardingKey(ne.Node)
		return msg, nil
	}
	return nil, fmt.Errorf("outbox record %d has unknown kind %q", e.Seq, e.Kind)
}
