package mqttbroker

import (
	"errors"
	"io"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/presenced/presenced/presence"
)

// reasonInternalError closes a connection whose handling panicked: a bug of
// the broker, not the client's doing. The reason set is open by contract.
const reasonInternalError presence.Reason = "internal_error"

// errDisconnected ends the read loop after a DISCONNECT packet.
var errDisconnected = errors.New("client sent DISCONNECT")

// conn is one TCP connection (one channel). One goroutine reads and handles
// its packets and owns its lifecycle; outbound messages from other
// connections are queued and written by a writer goroutine that exists only
// while there is something to write, so an idle connection costs one
// goroutine and a small struct.
type conn struct {
	s         *Server
	nc        net.Conn
	channelID string
	remote    string // "ip:port"
	done      chan struct{}
	reader    packetReader

	reasonMu sync.Mutex
	reason   presence.Reason // why the connection ends; the first cause wins

	// Set while handling CONNECT by the reading goroutine, read-only after.
	clientID  string
	username  string
	keepalive uint16
	clean     bool
	sess      *session // set once the session is claimed
	connected atomic.Bool

	will *willMessage // reading goroutine only; nil after DISCONNECT [MQTT-3.14.4-3]

	outbound
}

func newConn(s *Server, nc net.Conn) *conn {
	return &conn{
		s:         s,
		nc:        nc,
		channelID: newID(),
		remote:    nc.RemoteAddr().String(),
		done:      make(chan struct{}),
	}
}

// setReason records why the connection ends unless a cause is known.
func (c *conn) setReason(r presence.Reason) {
	c.reasonMu.Lock()
	if c.reason == "" {
		c.reason = r
	}
	c.reasonMu.Unlock()
}

func (c *conn) closeReason() presence.Reason {
	c.reasonMu.Lock()
	defer c.reasonMu.Unlock()
	if c.reason == "" {
		return presence.ReasonNetworkError
	}
	return c.reason
}

// kick closes the connection from another goroutine for reason r; the
// reading goroutine then finishes it.
func (c *conn) kick(r presence.Reason) {
	c.setReason(r)
	c.nc.Close()
}

// serve reads and handles packets until the connection ends, then
// finishes it. It runs on the connection's own goroutine.
func (c *conn) serve() {
	defer c.finish()
	defer c.recoverPanic()

	cfg := &c.s.cfg
	c.nc.SetReadDeadline(time.Now().Add(cfg.ConnectTimeout))
	first, body, err := c.reader.readPacket(c.nc, cfg.MaxPacketSize)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.s.stats.connectTimeouts.Add(1)
		}
		c.fail(err)
		return
	}
	c.s.stats.bytesIn.Add(int64(1 + remainingLengthSize(len(body)) + len(body)))
	if t := packetType(first >> 4); t != typeConnect {
		c.fail(malformed("MQTT-3.1.0-1", "first packet is %s, not CONNECT", t))
		return
	}
	p, err := decodePacket(first, body)
	if err != nil {
		var refused *refusedError
		if errors.As(err, &refused) {
			c.refuse(refused.Code, refused)
			return
		}
		c.fail(err)
		return
	}
	if !c.handleConnect(p.(*connectPacket)) {
		return
	}
	keepalive := time.Duration(c.keepalive) * 1500 * time.Millisecond // [MQTT-3.1.2-24]
	if keepalive == 0 {
		c.nc.SetReadDeadline(time.Time{})
	}
	for {
		if keepalive > 0 {
			c.nc.SetReadDeadline(time.Now().Add(keepalive))
		}
		first, body, err := c.reader.readPacket(c.nc, cfg.MaxPacketSize)
		if err != nil {
			c.fail(err)
			return
		}
		c.s.stats.bytesIn.Add(int64(1 + remainingLengthSize(len(body)) + len(body)))
		p, err := decodePacket(first, body)
		if err == nil {
			err = c.handle(p)
		}
		if err != nil {
			c.fail(err)
			return
		}
	}
}

// fail records the cause of the end of the connection.
func (c *conn) fail(err error) {
	var reason presence.Reason
	switch {
	case errors.Is(err, errDisconnected):
		reason = presence.ReasonClientDisconnect
	case isProtocolError(err), errors.Is(err, io.ErrUnexpectedEOF):
		reason = presence.ReasonProtocolError
		c.s.stats.protocolErrors.Add(1)
		c.s.log.Debug("mqtt protocol error", "channel", c.channelID, "client", c.clientID, "remote", c.remote, "err", err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		reason = presence.ReasonKeepaliveTimeout
		if c.connected.Load() {
			c.s.stats.keepaliveExpired.Add(1)
		}
	case errors.Is(err, io.EOF):
		reason = presence.ReasonClientClosed
	default:
		reason = presence.ReasonNetworkError
	}
	c.setReason(reason)
}

// recoverPanic turns a panic of this connection into its closing, so one
// client can never crash the broker.
func (c *conn) recoverPanic() {
	if r := recover(); r != nil {
		c.setReason(reasonInternalError)
		c.s.log.Error("mqtt connection handler panicked", "channel", c.channelID, "panic", r, "stack", string(debug.Stack()))
	}
}

// finish ends the connection: close the socket, publish the will unless
// DISCONNECT discarded it, release the session, and emit tcpclean — exactly
// once, and only for a channel whose connect was emitted.
func (c *conn) finish() {
	c.nc.Close()
	c.stopOutbound()
	if c.connected.Load() {
		reason := c.closeReason()
		if reason == presence.ReasonTakeover {
			c.s.stats.takeovers.Add(1)
		}
		if c.will != nil {
			c.s.publishWill(c, c.will)
			c.will = nil
		}
		c.s.detach(c)
		e := c.s.event(c, presence.EventTCPClean)
		e.Reason = reason
		c.s.emit(e)
		c.connected.Store(false)
		c.s.stats.channels.Add(-1)
	} else if c.sess != nil {
		c.s.detach(c)
	}
	c.s.removeConn(c)
	close(c.done)
}
