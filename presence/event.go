// Package presence is the domain of presenced: lifecycle events, their
// validation, the online rule, and the query and result types shared by the
// store, the broker, the consumer and the API. It imports only the standard
// library; every other package depends on it and never on each other.
package presence

import (
	"fmt"
	"strings"
)

// EventType is one of the three lifecycle events of a TCP connection
// (Alibaba Cloud MQTT client status notifications).
type EventType string

const (
	// EventConnect: the broker accepted a CONNECT on the channel.
	EventConnect EventType = "connect"
	// EventDisconnect: a DISCONNECT packet arrived. It does not make a
	// channel offline; only tcpclean does.
	EventDisconnect EventType = "disconnect"
	// EventTCPClean: the TCP connection really closed, whatever the cause.
	EventTCPClean EventType = "tcpclean"
)

// EventTypes lists the valid event types in lifecycle order.
var EventTypes = [...]EventType{EventConnect, EventDisconnect, EventTCPClean}

// Valid reports whether t is one of the three lifecycle event types.
func (t EventType) Valid() bool {
	switch t {
	case EventConnect, EventDisconnect, EventTCPClean:
		return true
	}
	return false
}

// Reason explains why a channel was closed; carried on tcpclean events.
type Reason string

// Close reasons. The set is open: consumers must accept reasons they do not
// know, so new brokers can add their own.
const (
	ReasonClientClosed     Reason = "client_closed"     // the client closed the socket without DISCONNECT
	ReasonClientDisconnect Reason = "client_disconnect" // the client sent DISCONNECT, then the socket closed
	ReasonKeepaliveTimeout Reason = "keepalive_timeout" // nothing received for 1.5 × keepalive [MQTT-3.1.2-24]
	ReasonTakeover         Reason = "takeover"          // a new connection with the same client id [MQTT-3.1.4-2]
	ReasonProtocolError    Reason = "protocol_error"    // malformed or forbidden packet
	ReasonServerShutdown   Reason = "server_shutdown"   // the broker closed it while stopping
	ReasonNodeLost         Reason = "node_lost"         // synthesized: the broker node restarted or went silent
	ReasonReconciled       Reason = "reconciled"        // synthesized: the broker no longer held the channel
	ReasonNetworkError     Reason = "network_error"     // a read or write error on the socket
	ReasonSlowConsumer     Reason = "slow_consumer"     // the broker closed a client that let outbound bytes pile up, or whose large packet found the inbound budget used up
	ReasonAPIDisconnect    Reason = "api_disconnect"    // an operator closed it through the API (DELETE /clients/{id}/connection)
)

// Event is one lifecycle event of one channel (TCP connection), in the wire
// JSON of DESIGN.md. The first five fields are exactly Alibaba's; the rest are
// additive and optional on input.
type Event struct {
	ClientID  string    `json:"clientId"`
	ChannelID string    `json:"channelId"`
	Type      EventType `json:"eventType"`
	// Time is milliseconds since the Unix epoch on the broker's clock. It is
	// evidence for operators; the online rule never orders events by it.
	Time     int64  `json:"time"`
	ClientIP string `json:"clientIp"`

	Node  string `json:"node,omitempty"`  // broker node id, stable across restarts
	Epoch string `json:"epoch,omitempty"` // unique per broker process start
	// Reason is set on tcpclean events.
	Reason Reason `json:"reason,omitempty"`
	// TakeoverBy is set on a tcpclean with reason takeover: the channel id
	// of the connection that took the client id over. The broker records
	// that connection's connect before it closes this one, so the store can
	// hold this close back until the successor's connect is stored, and a
	// takeover never shows the client offline, whatever the delivery order.
	TakeoverBy string `json:"takeoverBy,omitempty"`
	// NodeSeq numbers the events of one broker epoch in the order the broker
	// emitted them. Reconciliation compares it with the NodeSeq of a
	// channel-set report, so a channel opened after the report is never
	// closed by it — without trusting any wall clock.
	NodeSeq uint64 `json:"nodeSeq,omitempty"`

	// Connect details, set on connect events.
	Username     string `json:"username,omitempty"`
	Keepalive    int    `json:"keepalive,omitempty"`
	CleanSession *bool  `json:"cleanSession,omitempty"`
	// TLSVersion ("TLS 1.2", "TLS 1.3") is set on the connect event of a
	// connection over TLS; TLSClientSubject (RFC 2253) when the client
	// presented a verified certificate (mutual TLS).
	TLSVersion       string `json:"tlsVersion,omitempty"`
	TLSClientSubject string `json:"tlsClientSubject,omitempty"`
	// ProtocolLevel is set on connect events: 3 (MQTT 3.1), 4 (3.1.1) or
	// 5 (5.0).
	ProtocolLevel int `json:"protocolLevel,omitempty"`
	// ReasonCode is the MQTT 5 reason code of the DISCONNECT packet that
	// ended the connection, on its disconnect (sent by the client) and
	// tcpclean (sent by either side) events; nil when none was exchanged
	// (MQTT 3.1.1, or a connection that simply dropped). Reason says why in
	// presenced's words; ReasonCode is what the peers told each other.
	ReasonCode *int `json:"reasonCode,omitempty"`
}

// Key is the natural idempotency key of an event: a channel has at most one
// event of each type.
type Key struct {
	ChannelID string
	Type      EventType
}

// Key returns the idempotency key of e.
func (e Event) Key() Key { return Key{ChannelID: e.ChannelID, Type: e.Type} }

// String describes the event for logs; it never includes credentials.
func (e Event) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s client=%q channel=%s", e.Type, e.ClientID, e.ChannelID)
	if e.Node != "" {
		fmt.Fprintf(&b, " node=%s", e.Node)
	}
	if e.Reason != "" {
		fmt.Fprintf(&b, " reason=%s", e.Reason)
	}
	return b.String()
}

// GroupID returns the Alibaba group id of a client id: the part before
// "@@@", or "" when the client id has none.
func GroupID(clientID string) string {
	group, _, found := strings.Cut(clientID, "@@@")
	if !found {
		return ""
	}
	return group
}
