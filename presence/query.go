package presence

import "time"

// State is the three-valued answer about a client.
type State string

const (
	StateOnline  State = "online"
	StateOffline State = "offline"
	// StateUnknown: the client's only open channels are on a broker node that
	// stopped heartbeating; it may or may not still be connected.
	StateUnknown State = "unknown"
)

// Status answers "is this client online?".
type Status struct {
	ClientID     string     `json:"clientId"`
	Online       bool       `json:"online"`
	State        State      `json:"state"`
	OpenChannels int        `json:"openChannels"`
	Since        *time.Time `json:"since,omitempty"`       // when the current online (or unknown) period began
	LastEventAt  *time.Time `json:"lastEventAt,omitempty"` // the broker time of the newest event of this client
	Node         string     `json:"node,omitempty"`        // set with StateUnknown: the silent node
}

// Channel is one connection of a client and the evidence about it.
type Channel struct {
	ChannelID    string     `json:"channelId"`
	ClientID     string     `json:"clientId"`
	ClientIP     string     `json:"clientIp,omitempty"`
	Node         string     `json:"node,omitempty"`
	Epoch        string     `json:"epoch,omitempty"`
	Open         bool       `json:"open"`
	ConnectAt    *time.Time `json:"connectAt,omitempty"`
	DisconnectAt *time.Time `json:"disconnectAt,omitempty"`
	TCPCleanAt   *time.Time `json:"tcpcleanAt,omitempty"`
	Reason       Reason     `json:"reason,omitempty"`
	// ClosedBy says who closed the channel: "client", "broker" or "fencing"
	// (synthesized by presenced when a node was lost); empty while open.
	ClosedBy string `json:"closedBy,omitempty"`
	// DurationMillis is tcpclean − connect on the broker's clock, when both are known.
	DurationMillis *int64 `json:"durationMs,omitempty"`
	// How the connection was made, from its connect event (absent when the
	// store has not seen it, or kept it before version 9).
	Username     string `json:"username,omitempty"`
	Keepalive    *int   `json:"keepalive,omitempty"`
	CleanSession *bool  `json:"cleanSession,omitempty"`
	TLSVersion   string `json:"tlsVersion,omitempty"`
	TLSSubject   string `json:"tlsClientSubject,omitempty"`
	// ProtocolLevel is the MQTT level of the connect (3, 4 or 5; absent
	// when not recorded); ReasonCode the MQTT 5 reason code of the
	// DISCONNECT that ended it, when one was exchanged.
	ProtocolLevel int  `json:"protocolLevel,omitempty"`
	ReasonCode    *int `json:"reasonCode,omitempty"`
	// Live is what the open channel's session holds now, where the API
	// runs beside the broker that holds it (presenced serve).
	Live *SessionCounts `json:"live,omitempty"`
}

// SessionCounts are what a connected client's MQTT session holds at one
// moment: its subscriptions, QoS 1 and 2 messages sent to it and not yet
// acknowledged, and messages queued behind those.
type SessionCounts struct {
	Subscriptions int `json:"subscriptions"`
	InFlight      int `json:"inFlight"`
	Queued        int `json:"queued"`
}

// StoredEvent is an event as kept in the store, with the store's own
// sequence number (its arrival order, used for keyset pagination and stream
// resumption) and the time it was applied.
type StoredEvent struct {
	Event
	Seq       int64     `json:"seq"`
	AppliedAt time.Time `json:"appliedAt"`
	// Source says where the event came from: "broker" (a broker node's
	// lifecycle event), "api" (POST /events) or "store" (a close the
	// store synthesized for a lost node); empty for events stored before
	// sources were recorded.
	Source string `json:"source,omitempty"`
}

// HistoryQuery selects a client's events. Pages are keyset-paginated on the
// store sequence number: Cursor is the Seq of the last event of the previous
// page (0 for the first page).
type HistoryQuery struct {
	ClientID   string
	From, To   time.Time // on the event time; zero means unbounded
	Limit      int
	AfterSeq   int64
	Descending bool
}

// ClosedBy classifies a close reason as the client's doing, the broker's, or
// presenced's fencing of a lost node.
func ClosedBy(r Reason) string {
	switch r {
	case ReasonClientClosed, ReasonClientDisconnect, ReasonNetworkError:
		return "client"
	case ReasonNodeLost, ReasonReconciled:
		return "fencing"
	case "":
		return ""
	}
	return "broker"
}

// Millis converts a time to milliseconds since the Unix epoch.
func Millis(t time.Time) int64 { return t.UnixMilli() }

// FromMillis converts milliseconds since the Unix epoch to a UTC time.
func FromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// ClientActivity is a client the store has events of, with the time of
// its newest event (ms since the epoch, broker clock).
type ClientActivity struct {
	ClientID    string
	LastEventAt int64
}
