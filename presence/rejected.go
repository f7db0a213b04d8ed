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

// RefusedConnect is a CONNECT the broker refused, recorded so that an
// operator can tell why a client never got in. It never holds the
// password. The online rule ignores it: a refused client had no channel.
type RefusedConnect struct {
	ClientID   string    `json:"clientId"`
	Time       int64     `json:"time"`       // ms since the epoch, broker clock
	ReturnCode int       `json:"returnCode"` // the CONNACK code: 1 protocol, 2 identifier, 3 unavailable, 4 credentials, 5 not authorized
	Reason     string    `json:"reason"`     // why, as the broker logged it
	ClientIP   string    `json:"clientIp"`
	Username   string    `json:"username,omitempty"`
	Node       string    `json:"node,omitempty"`
	RecordedAt time.Time `json:"recordedAt"` // the store's clock, for retention
}
