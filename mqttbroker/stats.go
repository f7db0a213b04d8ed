package mqttbroker

import "sync/atomic"

// Stats are the broker's counters, for metrics. Gauges say "now"; every
// other field counts since the server was created.
type Stats struct {
	Connections        int64 // gauge: TCP connections held, CONNECT accepted or not
	Channels           int64 // gauge: connections with a connect event and no tcpclean yet
	Sessions           int64 // gauge: sessions held, connected or persistent offline
	PersistentSessions int64 // gauge: sessions with cleanSession=0, connected or not (MaxPersistentSessions)
	RetainedMessages   int64 // gauge: retained messages stored (MaxRetainedMessages)
	RetainedBytes      int64 // gauge: estimated bytes of the retained store (MaxRetainedBytes)
	SessionBytes       int64 // gauge: bytes of QoS 1/2 messages held for sessions, queued or in flight (MaxSessionBytes)
	QueuedMessages     int64 // gauge: QoS 1/2 messages waiting in session queues
	OutboundBytes      int64 // gauge: bytes waiting to be written to connections (MaxOutboundBytesTotal)
	InboundBytes       int64 // gauge: bytes of large packets being read (MaxInboundBytesTotal)
	Subscriptions      int64 // gauge: subscriptions of all sessions, a session's filter each (MaxSubscriptionsTotal)
	WillBytes          int64 // gauge: bytes of wills held, of connected clients and delayed (MaxWillBytesTotal)

	Accepted             int64 // TCP connections accepted
	ConnectionsOverLimit int64 // connections closed at once: over MaxConnections, or accepted on the reserve descriptor when out of descriptors
	Connects             int64 // CONNECTs answered with CONNACK 0
	Refused              int64 // CONNECTs answered with a refusing CONNACK (the sum of the five below)
	RefusedProtocol      int64 // CONNACK 0x01: unacceptable protocol version
	RefusedIdentifier    int64 // CONNACK 0x02: identifier rejected
	RefusedUnavailable   int64 // CONNACK 0x03: server unavailable (event backlog full, or MaxPersistentSessions)
	RefusedBadAuth       int64 // CONNACK 0x04: bad user name or password
	RefusedNotAuthorized int64 // CONNACK 0x05: not authorized (anonymous, or refused by the Authenticator or for its will topic)
	SessionsRefused      int64 // CONNECTs refused (0x03) because MaxPersistentSessions was reached
	ConnectTimeouts      int64 // connections closed for not sending CONNECT in time
	ProtocolErrors       int64 // connections closed for a protocol violation
	KeepaliveExpired     int64 // connections closed for keepalive expiry [MQTT-3.1.2-24]
	Takeovers            int64 // connections closed because their client id connected again
	SlowConsumers        int64 // connections closed for letting outbound bytes pile up (reason slow_consumer)
	InboundRefused       int64 // connections closed because their large packet would exceed MaxInboundBytesTotal (reason slow_consumer)
	WillsRefused         int64 // CONNECTs refused (0x03) because their will would pass MaxWillBytesTotal
	Kicked               int64 // connections closed by an operator (Kick, reason api_disconnect)
	SinkErrors           int64 // events the sink failed to accept
	EventsDropped        int64 // tcpclean events dropped by the DropTCPClean test hook

	MessagesIn       int64 // PUBLISH packets received
	MessagesOut      int64 // PUBLISH packets sent (redeliveries included)
	BytesIn          int64 // bytes of packets received
	BytesOut         int64 // bytes written
	Dropped          int64 // QoS 0 messages dropped on a slow connection
	QueueDropped     int64 // queued messages dropped because a session queue was full (MaxQueuedMessages)
	QueueEvicted     int64 // QoS 1/2 messages dropped for MaxSessionBytes: the oldest queued of any session
	RetainedRefused  int64 // retained messages not stored for MaxRetainedMessages or MaxRetainedBytes
	DeniedPublishes  int64 // PUBLISHes dropped by the Authorizer
	DeniedSubscribes int64 // subscriptions refused by the Authorizer
	LimitRejections  int64 // topics or subscriptions refused by a size limit
	WillsPublished   int64 // will messages published
	PresenceMessages int64 // presence messages published on $SYS/presence to at least one subscription (PresenceTopics)
	PresenceForged   int64 // client PUBLISHes to $SYS/presence dropped, and CONNECTs with a will there refused (0x05): the topics are the broker's
	SessionsExpired  int64 // persistent sessions discarded after SessionExpiry
	// MQTT 5.0
	V5Connects      int64 // accepted CONNECTs of MQTT 5.0 clients (counted in Connects too)
	TooLargeForPeer int64 // messages not sent to a v5 client because they exceed its Maximum Packet Size [MQTT-3.1.2-25]
	MessagesExpired int64 // messages not delivered because their Message Expiry Interval passed [MQTT-3.3.2-5]
	WillsDelayed    int64 // v5 wills set to wait for their Will Delay Interval
	WillsCancelled  int64 // delayed wills not published because the session was taken up in time [MQTT-3.1.3-9]
}

// stats holds the live counters; Stats() snapshots them.
type stats struct {
	connections, channels, sessions, persistent, retained        atomic.Int64
	retainedBytes, outboundBytes                                 atomic.Int64
	accepted, overLimit, connects, connectTimeouts               atomic.Int64
	refusedByCode                                                [6]atomic.Int64 // by CONNACK return code
	sessionsRefused, protocolErrors, keepaliveExpired, takeovers atomic.Int64
	slowConsumers, sinkErrors, eventsDropped                     atomic.Int64
	kicked, inboundRefused, willsRefused                         atomic.Int64
	messagesIn, messagesOut, bytesIn, bytesOut, dropped          atomic.Int64
	queueDropped, queueEvicted, retainedRefused                  atomic.Int64
	deniedPublishes, deniedSubscribes, limitRejects              atomic.Int64
	willsPublished, sessionsExpired                              atomic.Int64
	presenceForged, presenceMessages                             atomic.Int64
	v5Connects, tooLargeForPeer, messagesExpired                 atomic.Int64
	willsDelayed, willsCancelled                                 atomic.Int64
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	st := Stats{
		Connections: c.connections.Load(), Channels: c.channels.Load(),
		Sessions: c.sessions.Load(), PersistentSessions: c.persistent.Load(),
		RetainedMessages: c.retained.Load(), RetainedBytes: c.retainedBytes.Load(),
		SessionBytes: s.budget.bytes.Load(), QueuedMessages: s.budget.queued.Load(),
		OutboundBytes: c.outboundBytes.Load(), InboundBytes: s.inbound.used.Load(), InboundRefused: c.inboundRefused.Load(),
		Subscriptions: s.subs.count.Load(), WillBytes: s.wills.used.Load(), WillsRefused: c.willsRefused.Load(),
		Accepted: c.accepted.Load(), ConnectionsOverLimit: c.overLimit.Load(), Connects: c.connects.Load(),
		RefusedProtocol:      c.refusedByCode[connRefusedProtocol].Load(),
		RefusedIdentifier:    c.refusedByCode[connRefusedIdentifier].Load(),
		RefusedUnavailable:   c.refusedByCode[connRefusedUnavailable].Load(),
		RefusedBadAuth:       c.refusedByCode[connRefusedBadAuth].Load(),
		RefusedNotAuthorized: c.refusedByCode[connRefusedNotAuth].Load(),
		SessionsRefused:      c.sessionsRefused.Load(),
		ConnectTimeouts:      c.connectTimeouts.Load(), ProtocolErrors: c.protocolErrors.Load(),
		KeepaliveExpired: c.keepaliveExpired.Load(), Takeovers: c.takeovers.Load(),
		SlowConsumers: c.slowConsumers.Load(), Kicked: c.kicked.Load(),
		SinkErrors: c.sinkErrors.Load(), EventsDropped: c.eventsDropped.Load(),
		MessagesIn: c.messagesIn.Load(), MessagesOut: c.messagesOut.Load(),
		BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load(), Dropped: c.dropped.Load(),
		QueueDropped: c.queueDropped.Load(), QueueEvicted: c.queueEvicted.Load(),
		RetainedRefused: c.retainedRefused.Load(), DeniedPublishes: c.deniedPublishes.Load(),
		DeniedSubscribes: c.deniedSubscribes.Load(), LimitRejections: c.limitRejects.Load(),
		WillsPublished: c.willsPublished.Load(), SessionsExpired: c.sessionsExpired.Load(),
		PresenceForged: c.presenceForged.Load(), PresenceMessages: c.presenceMessages.Load(),
		V5Connects: c.v5Connects.Load(), TooLargeForPeer: c.tooLargeForPeer.Load(),
		MessagesExpired: c.messagesExpired.Load(), WillsDelayed: c.willsDelayed.Load(),
		WillsCancelled: c.willsCancelled.Load(),
	}
	st.Refused = st.RefusedProtocol + st.RefusedIdentifier + st.RefusedUnavailable + st.RefusedBadAuth + st.RefusedNotAuthorized
	return st
}
