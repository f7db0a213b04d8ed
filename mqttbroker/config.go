package mqttbroker

import (
	"log/slog"
	"time"

	"github.com/presenced/presenced/mqttbroker/persist"
	"github.com/presenced/presenced/presence"
)

// Config configures a Server. The zero value of every field picks the
// default named in its comment.
type Config struct {
	// Node and Epoch are put on every lifecycle event: the broker node id
	// (stable across restarts) and the id of this process start.
	Node, Epoch string

	// ConnectTimeout bounds the wait for CONNECT after accepting a
	// connection. Default 10s.
	ConnectTimeout time.Duration
	// PacketTimeout bounds the time the rest of a packet may take once
	// its first bytes arrived, for a client with keepalive 0 (with one,
	// 1.5 × keepalive bounds every read): one that sends part of a packet
	// and stops would hold a goroutine and a read buffer for good, where
	// an idle connection holds neither. Past it the connection is closed
	// (tcpclean reason protocol_error). Default 60s.
	PacketTimeout time.Duration
	// WriteTimeout bounds every write to a client; a client that does not
	// read for this long is disconnected (tcpclean reason network_error).
	// Default 30s.
	WriteTimeout time.Duration
	// MaxPacketSize bounds a whole packet in bytes; it is checked on the
	// fixed header, before anything is allocated. Default 256 KiB.
	MaxPacketSize int

	// AllowAnonymous admits clients that present no user name. Clients that
	// present one are checked by Authenticator; without an Authenticator
	// AllowAnonymous alone decides for everyone.
	AllowAnonymous bool
	// Authenticator checks credentials; nil means none (see AllowAnonymous).
	Authenticator Authenticator
	// Authorizer decides publish and subscribe rights; nil allows all.
	Authorizer Authorizer
	// OnRefused, when set, is told of every CONNECT refused with a client
	// id (never its password), for the record of why a client could not
	// get in. It is called on the connection's goroutine: it must not
	// block (presenced queues, rate-limits and drops).
	OnRefused func(presence.RefusedConnect)
	// TLSIdentity and TLSRequireClientIDMatch apply to connections served
	// by ServeTLS with verified client certificates (see tls.go).
	TLSIdentity             TLSIdentity
	TLSRequireClientIDMatch bool

	// MaxConnections bounds concurrent connections; more are accepted and
	// closed at once (Stats.ConnectionsOverLimit), so they wait neither in
	// the listen backlog nor for a descriptor. 0 means unlimited.
	MaxConnections int
	// InflightWindow bounds the QoS 1 and 2 messages sent to one client and
	// not yet acknowledged. Default 32.
	InflightWindow int
	// MaxQueuedMessages bounds the messages waiting for one client (offline
	// or with a full window); the oldest is dropped and counted. Default 1000.
	MaxQueuedMessages int
	// MaxUnreleasedQoS2 bounds the QoS 2 packet ids one client may leave
	// unreleased (PUBREC sent, no PUBREL yet); more is a protocol error.
	// Default 1024.
	MaxUnreleasedQoS2 int
	// SessionExpiry discards a persistent session (cleanSession=0) this long
	// after its client went away. Default 24h; negative never expires.
	SessionExpiry time.Duration
	// MaxKeepalive is the longest keepalive an MQTT 5.0 client may have: a
	// longer one, or 0 (none), is replaced by it and told in CONNACK as
	// Server Keep Alive [MQTT-3.2.2-21]. 3.1.1 clients keep their own.
	// Rounded to whole seconds, at most 65535 s. Default 0: no maximum.
	MaxKeepalive time.Duration
	// MaxTopicLength bounds topic names and filters in bytes; longer ones
	// are refused (SUBACK 0x80, PUBLISH dropped). Default 1024.
	MaxTopicLength int
	// MaxTopicLevels bounds the levels of topic names and filters the same
	// way. Default 128.
	MaxTopicLevels int
	// MaxSubscriptionsPerClient bounds the filters one session holds;
	// further ones get SUBACK 0x80. Default 1000.
	MaxSubscriptionsPerClient int
	// MaxSubscriptionsTotal bounds the subscriptions of all sessions
	// together (a session's filter each); a SUBSCRIBE that would add one
	// more gets, for that filter, SUBACK 0x80 (v5: 0x97 Quota exceeded).
	// Default 1,000,000.
	MaxSubscriptionsTotal int

	// Memory budgets: a peer can make the broker hold messages only within
	// these (doc.go sums up the bound the defaults promise).

	// MaxRetainedMessages and MaxRetainedBytes bound the retained store;
	// bytes count topic, payload and the store's own overhead. Beyond
	// either, a retained PUBLISH on a topic without a retained message is
	// not stored (Stats.RetainedRefused) but still delivered to current
	// subscribers; replacing or clearing a stored one always works.
	// Defaults 100,000 and 64 MiB.
	MaxRetainedMessages int
	MaxRetainedBytes    int64
	// MaxPersistentSessions bounds the sessions with cleanSession=0,
	// online or not; a CONNECT that would create one more is refused with
	// CONNACK 0x03 (server unavailable). Default 100,000.
	MaxPersistentSessions int
	// MaxSessionBytes bounds the QoS 1 and 2 messages held for all
	// sessions together, queued or in flight, counting each message once
	// however many sessions hold it. Beyond it the oldest queued message
	// of any session is dropped (Stats.QueueEvicted). Default 128 MiB.
	MaxSessionBytes int64
	// MaxOutboundBytes bounds the bytes waiting in user space to be written
	// to one connection; a client that lets more pile up is disconnected
	// (tcpclean reason slow_consumer) when a QoS 0 message would add to
	// them. QoS 1 and 2 are bounded per client by InflightWindow instead.
	// Default 1 MiB, and never below two packets of MaxPacketSize.
	MaxOutboundBytes int
	// MaxOutboundBytesTotal bounds the bytes waiting for all connections,
	// a shared encoding counted once. Beyond it a connection that still has
	// bytes waiting loses the packet: QoS 0 is dropped (Stats.Dropped),
	// anything else disconnects it as a slow consumer. Default 64 MiB.
	MaxOutboundBytesTotal int64
	// MaxInboundBytesTotal bounds the bytes of packets being read that do
	// not fit a connection's 4 KiB read buffer, summed over all
	// connections: a client sending a large packet slowly holds what it
	// sent so far. A connection whose packet would take more is closed
	// (tcpclean reason slow_consumer, v5 DISCONNECT 0x97;
	// Stats.InboundRefused). Default 64 MiB, and never below two packets of
	// MaxPacketSize.
	MaxInboundBytesTotal int64
	// MaxWillBytesTotal bounds the wills the broker holds: those of
	// connected clients (a CONNECT's will is held until the connection
	// ends) and v5 wills waiting for their delay, each counted as its topic,
	// payload and 64 bytes. A CONNECT whose will would pass it is refused
	// with CONNACK 0x03 (v5: 0x97 Quota exceeded; Stats.WillsRefused).
	// Default 64 MiB, and never below two packets of MaxPacketSize.
	MaxWillBytesTotal int64

	// PresenceTopics publishes each client's connect and close on
	// $SYS/presence/{clientId}/connected and .../disconnected, as JSON at
	// QoS 0, not retained (see presence_topics.go). Off by default: without
	// an Authorizer every client could read every other client's address
	// and user name there. Clients can never publish below $SYS/presence.
	PresenceTopics bool

	// Persistence, when set, journals persistent sessions and retained
	// messages so that they survive a restart (persistence.go); Persisted
	// is the state it recovered, which New rebuilds. The caller opens and
	// closes the store (after Shutdown). nil: kept in memory only. When the
	// store is full (persist.Options.MaxBytes) a QoS 1/2 PUBLISH it cannot
	// keep for a persistent session, or as retained, is refused (v5: PUBACK
	// or PUBREC 0x97; 3.1.1: the connection closes) and not delivered to
	// that session; what the store already holds is never dropped for
	// space (persist.Stats.RefusedForSpace counts the refusals).
	Persistence *persist.Store
	Persisted   *persist.State

	// Logger receives diagnostics; default slog.Default(). Credentials are
	// never logged.
	Logger *slog.Logger
	// Now is the clock of event times and session expiry; default time.Now.
	Now func() time.Time

	// DropTCPClean is a test hook: when it returns true for a tcpclean
	// event, the event is not handed to the sink, as if it were lost.
	DropTCPClean func(presence.Event) bool
}

// withDefaults returns c with every unset field at its default.
func (c Config) withDefaults() Config {
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.PacketTimeout <= 0 {
		c.PacketTimeout = 60 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.MaxPacketSize <= 0 {
		c.MaxPacketSize = 256 << 10
	}
	c.MaxPacketSize = min(c.MaxPacketSize, 5+maxRemainingLength)
	if c.InflightWindow <= 0 {
		c.InflightWindow = 32
	}
	c.InflightWindow = min(c.InflightWindow, 65535)
	if c.MaxQueuedMessages <= 0 {
		c.MaxQueuedMessages = 1000
	}
	if c.MaxUnreleasedQoS2 <= 0 {
		c.MaxUnreleasedQoS2 = 1024
	}
	if c.SessionExpiry == 0 {
		c.SessionExpiry = 24 * time.Hour
	}
	if c.MaxKeepalive > 0 {
		c.MaxKeepalive = min(max(c.MaxKeepalive.Round(time.Second), time.Second), 65535*time.Second)
	}
	if c.MaxTopicLength <= 0 {
		c.MaxTopicLength = 1024
	}
	if c.MaxTopicLevels <= 0 {
		c.MaxTopicLevels = 128
	}
	if c.MaxSubscriptionsPerClient <= 0 {
		c.MaxSubscriptionsPerClient = 1000
	}
	if c.MaxSubscriptionsTotal <= 0 {
		c.MaxSubscriptionsTotal = 1_000_000
	}
	if c.MaxRetainedMessages <= 0 {
		c.MaxRetainedMessages = 100_000
	}
	if c.MaxRetainedBytes <= 0 {
		c.MaxRetainedBytes = 64 << 20
	}
	if c.MaxPersistentSessions <= 0 {
		c.MaxPersistentSessions = 100_000
	}
	if c.MaxSessionBytes <= 0 {
		c.MaxSessionBytes = 128 << 20
	}
	if c.MaxOutboundBytes <= 0 {
		c.MaxOutboundBytes = 1 << 20
	}
	// A caught-up client must always be able to receive the largest packet
	// while another waits behind it.
	c.MaxOutboundBytes = max(c.MaxOutboundBytes, 2*c.MaxPacketSize)
	if c.MaxOutboundBytesTotal <= 0 {
		c.MaxOutboundBytesTotal = 64 << 20
	}
	if c.MaxInboundBytesTotal <= 0 {
		c.MaxInboundBytesTotal = 64 << 20
	}
	c.MaxInboundBytesTotal = max(c.MaxInboundBytesTotal, 2*int64(c.MaxPacketSize))
	if c.MaxWillBytesTotal <= 0 {
		c.MaxWillBytesTotal = 64 << 20
	}
	c.MaxWillBytesTotal = max(c.MaxWillBytesTotal, 2*int64(c.MaxPacketSize))
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}
