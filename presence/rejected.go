package presence

import "time"

// RejectedEvent is a message that could not be decoded or validated,
// parked by the consumer for operators instead of blocking the pipeline.
type RejectedEvent struct {
	ID         int64     `json:"id"`
	ReceivedAt time.Time `json:"receivedAt"`
	Source     string    `json:"source"` // where it came from, e.g. "rocketmq:GID_demo_MQTT" or "http"
	Raw        []byte    `json:"raw"`    // the message body as received
	Reason     string    `json:"reason"` // why it was rejected
}
