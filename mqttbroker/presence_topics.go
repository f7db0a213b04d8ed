package mqttbroker

import (
	"encoding/json"
	"strings"

	"github.com/presenced/presenced/presence"
)

// Presence on MQTT topics (Config.PresenceTopics): the broker publishes
// each presence change of a client as a JSON message, so that apps that
// speak only MQTT can follow presence, as AWS IoT does on
// $aws/events/presence/connected/{clientId}:
//
//	$SYS/presence/{clientId}/connected     after the connect event is recorded
//	$SYS/presence/{clientId}/disconnected  after the tcpclean is emitted
//
// The messages are QoS 0 and not retained. A retained "connected",
// cleared on disconnect, would let a late subscriber read who is online,
// but it would be a second, weaker source of truth beside the store: a
// broker that dies leaves no retained state behind to clear (the store
// closes such channels as node_lost), each node of a cluster knows only
// its own clients, a takeover publishes the new connection's "connected"
// before the old one's "disconnected", and one retained message per online
// client would compete with the clients' own retained messages for
// MaxRetainedMessages. A late subscriber asks the HTTP API for the current
// state (GET /clients/{id}/online, /stream) and follows the topics from
// then on. QoS 0 means presence messages go through the normal routing and
// outbound budgets: a slow subscriber loses them (Stats.Dropped) or is
// disconnected (slow_consumer) like for any QoS 0 message, and nothing is
// kept for offline sessions, so a storm of connects holds no memory.
//
// The topics begin with '$', so '#' and '+' at the first level do not match
// them [MQTT-4.7.2-1]; with an Authorizer a subscriber needs read access to
// the $SYS/presence filter it subscribes to. No client may publish to
// $SYS/presence, whatever the Authorizer says: a forged message there
// would mislead every app following presence.

// presenceTopicRoot is the root of the topics the broker publishes
// presence on; clients may not publish below it.
const presenceTopicRoot = "$SYS/presence"

// isPresenceTopic reports whether topic is reserved for the broker's
// presence messages.
func isPresenceTopic(topic string) bool {
	rest, ok := strings.CutPrefix(topic, presenceTopicRoot)
	return ok && (rest == "" || rest[0] == '/')
}

// presenceTopicEscaper keeps a client id one topic level: a client id may
// contain '/' (never '+' or '#', see presence.ValidateClientID), which is
// written %2F, and '%' is written %25 so that the level decodes back to
// the id. The JSON body always carries the client id as it is.
var presenceTopicEscaper = strings.NewReplacer("%", "%25", "/", "%2F")

// presenceTopic returns the topic of a presence change of clientID; what
// is "connected" or "disconnected".
func presenceTopic(clientID, what string) string {
	return presenceTopicRoot + "/" + presenceTopicEscaper.Replace(clientID) + "/" + what
}

// presenceConnected is the body of a $SYS/presence/{clientId}/connected
// message: the connect event's details, never the password.
type presenceConnected struct {
	ClientID         string `json:"clientId"`
	ChannelID        string `json:"channelId"`
	Node             string `json:"node,omitempty"`
	ClientIP         string `json:"clientIp"`
	Username         string `json:"username,omitempty"`
	Time             int64  `json:"time"` // ms since the Unix epoch, the connect event's time
	Keepalive        int    `json:"keepalive"`
	CleanSession     bool   `json:"cleanSession"`
	ProtocolLevel    byte   `json:"protocolLevel"` // 5: MQTT 5.0, 4: MQTT 3.1.1, 3: MQTT 3.1
	TLSVersion       string `json:"tlsVersion,omitempty"`
	TLSClientSubject string `json:"tlsClientSubject,omitempty"`
}

// presenceDisconnected is the body of a
// $SYS/presence/{clientId}/disconnected message: the tcpclean's details.
type presenceDisconnected struct {
	ClientID   string          `json:"clientId"`
	ChannelID  string          `json:"channelId"`
	Node       string          `json:"node,omitempty"`
	ClientIP   string          `json:"clientIp"`
	Time       int64           `json:"time"` // ms since the Unix epoch, the tcpclean's time
	Reason     presence.Reason `json:"reason"`
	TakeoverBy string          `json:"takeoverBy,omitempty"`
	// DisconnectSent: the client sent DISCONNECT before the connection
	// closed.
	DisconnectSent bool `json:"disconnectSent"`
	// ReasonCode is the MQTT 5.0 DISCONNECT Reason Code that ended a v5
	// connection, sent by the client or by the server; absent otherwise.
	ReasonCode *byte `json:"reasonCode,omitempty"`
}

// publishConnected publishes the presence message of a recorded connect
// event e of a client that connected with protocolLevel.
func (s *Server) publishConnected(e *presence.Event, protocolLevel byte) {
	if !s.cfg.PresenceTopics {
		return
	}
	s.publishPresence(presenceTopic(e.ClientID, "connected"), func() any {
		return presenceConnected{
			ClientID: e.ClientID, ChannelID: e.ChannelID, Node: e.Node, ClientIP: e.ClientIP,
			Username: e.Username, Time: e.Time, Keepalive: e.Keepalive,
			CleanSession: e.CleanSession != nil && *e.CleanSession, ProtocolLevel: protocolLevel,
			TLSVersion: e.TLSVersion, TLSClientSubject: e.TLSClientSubject,
		}
	})
}

// publishDisconnected publishes the presence message of an emitted
// tcpclean e of c. It follows the tcpclean even when the sink failed to
// take it (a sink must not refuse one, see EventSink): a subscriber that
// saw a channel connect always learns that it closed.
func (s *Server) publishDisconnected(e *presence.Event, c *conn) {
	if !s.cfg.PresenceTopics {
		return
	}
	disconnectSent := c.disconnectSent
	var reasonCode *byte
	if code, ok := c.disconnectReasonCode(); ok {
		reasonCode = &code
	}
	s.publishPresence(presenceTopic(e.ClientID, "disconnected"), func() any {
		return presenceDisconnected{
			ClientID: e.ClientID, ChannelID: e.ChannelID, Node: e.Node, ClientIP: e.ClientIP,
			Time: e.Time, Reason: e.Reason, TakeoverBy: e.TakeoverBy, DisconnectSent: disconnectSent,
			ReasonCode: reasonCode,
		}
	})
}

// publishPresence routes a QoS 0, non-retained message on topic to its
// subscribers, as route does for a client's message. body is encoded only
// when someone subscribes: with no subscriber a connect costs one lookup
// in the subscription tree.
func (s *Server) publishPresence(topic string, body func() any) {
	var r recipients
	s.subs.match(topic, r.add)
	if len(r.list) == 0 && len(r.big) == 0 {
		return
	}
	payload, err := json.Marshal(body())
	if err != nil { // plain strings and numbers: cannot happen
		s.log.Error("mqtt presence message not encoded", "topic", truncateForLog(topic), "err", err)
		return
	}
	m := &message{topic: topic, payload: payload}
	s.stats.presenceMessages.Add(1)
	r.each(func(sess *session, _ byte) {
		s.deliver(sess, delivery{msg: m}) // QoS 0 whatever was granted [MQTT-3.3.5-1]
	})
}
