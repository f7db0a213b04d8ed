package mqttbroker

import "sync/atomic"

// Stats are the broker's counters, for metrics. Gauges say "now"; every
// other field counts since the server was created.
type Stats struct {
	Connections      int64 // gauge: TCP connections held, CONNECT accepted or not
	Channels         int64 // gauge: connections with a connect event and no tcpclean yet
	Sessions         int64 // gauge: sessions held, connected or persistent offline
	RetainedMessages int64 // gauge: retained messages stored

	Accepted         int64 // TCP connections accepted
	Connects         int64 // CONNECTs answered with CONNACK 0
	Refused          int64 // CONNECTs answered with a refusing CONNACK, or connections over MaxConnections
	ConnectTimeouts  int64 // connections closed for not sending CONNECT in time
	ProtocolErrors   int64 // connections closed for a protocol violation
	KeepaliveExpired int64 // connections closed for keepalive expiry [MQTT-3.1.2-24]
	Takeovers        int64 // connections closed because their client id connected again
	SinkErrors       int64 // events the sink failed to accept
	EventsDropped    int64 // tcpclean events dropped by the DropTCPClean test hook

	MessagesIn       int64 // PUBLISH packets received
	MessagesOut      int64 // PUBLISH packets sent (redeliveries included)
	BytesIn          int64 // bytes of packets received
	BytesOut         int64 // bytes written
	Dropped          int64 // QoS 0 messages dropped on a slow connection
	QueueDropped     int64 // queued messages dropped because a session queue was full
	DeniedPublishes  int64 // PUBLISHes dropped by the Authorizer
	DeniedSubscribes int64 // subscriptions refused by the Authorizer
	LimitRejections  int64 // topics or subscriptions refused by a size limit
	WillsPublished   int64 // will messages published
	SessionsExpired  int64 // persistent sessions discarded after SessionExpiry
}

// stats holds the live counters; Stats() snapshots them.
type stats struct {
	connections, channels, sessions, retained                     atomic.Int64
	accepted, connects, refused, connectTimeouts, protocolErrors  atomic.Int64
	keepaliveExpired, takeovers, sinkErrors, eventsDropped        atomic.Int64
	messagesIn, messagesOut, bytesIn, bytesOut, dropped           atomic.Int64
	queueDropped, deniedPublishes, deniedSubscribes, limitRejects atomic.Int64
	willsPublished, sessionsExpired                               atomic.Int64
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		Connections: c.connections.Load(), Channels: c.channels.Load(),
		Sessions: c.sessions.Load(), RetainedMessages: c.retained.Load(),
		Accepted: c.accepted.Load(), Connects: c.connects.Load(), Refused: c.refused.Load(),
		ConnectTimeouts: c.connectTimeouts.Load(), ProtocolErrors: c.protocolErrors.Load(),
		KeepaliveExpired: c.keepaliveExpired.Load(), Takeovers: c.takeovers.Load(),
		SinkErrors: c.sinkErrors.Load(), EventsDropped: c.eventsDropped.Load(),
		MessagesIn: c.messagesIn.Load(), MessagesOut: c.messagesOut.Load(),
		BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load(), Dropped: c.dropped.Load(),
		QueueDropped: c.queueDropped.Load(), DeniedPublishes: c.deniedPublishes.Load(),
		DeniedSubscribes: c.deniedSubscribes.Load(), LimitRejections: c.limitRejects.Load(),
		WillsPublished: c.willsPublished.Load(), SessionsExpired: c.sessionsExpired.Load(),
	}
}
