package mqttbroker

import (
	"log/slog"
	"time"

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

	// MaxConnections bounds concurrent connections; more are closed at
	// once. 0 means unlimited.
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
	// MaxTopicLength bounds topic names and filters in bytes; longer ones
	// are refused (SUBACK 0x80, PUBLISH dropped). Default 1024.
	MaxTopicLength int
	// MaxTopicLevels bounds the levels of topic names and filters the same
	// way. Default 128.
	MaxTopicLevels int
	// MaxSubscriptionsPerClient bounds the filters one session holds;
	// further ones get SUBACK 0x80. Default 1000.
	MaxSubscriptionsPerClient int

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
	if c.MaxTopicLength <= 0 {
		c.MaxTopicLength = 1024
	}
	if c.MaxTopicLevels <= 0 {
		c.MaxTopicLevels = 128
	}
	if c.MaxSubscriptionsPerClient <= 0 {
		c.MaxSubscriptionsPerClient = 1000
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}
