package mqttbroker

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/presenced/presenced/presence"
)

// reasonInternalError closes a connection whose handling panicked: a bug of
// the broker, not the client's doing. The reason set is open by contract.
const reasonInternalError presence.Reason = "internal_error"

// errDisconnected ends the read loop after a DISCONNECT packet.
var errDisconnected = errors.New("client sent DISCONNECT")

// conn is one TCP connection (one channel). One goroutine at a time reads
// and handles its packets and owns its lifecycle; while there is nothing to
// read the connection is parked in the server's idlePoller with no
// goroutine at all. Outbound messages from other connections are queued and
// written by a writer goroutine that exists only while there is something
// to write, so an idle connection costs a small struct.
type conn struct {
	s       *Server
	nc      net.Conn
	addr    string   // the peer's address, formatted once: every event carries it
	channel [16]byte // the channel id, 128 random bits; see channelID
	reader  packetReader

	stateMu sync.Mutex
	reason  presence.Reason // why the connection ends; the first cause wins
	// takeoverBy is the channel id of the connection that took this one's
	// client id over, when that is why it ends (reason takeover).
	takeoverBy string
	finished   bool // finish is done
	// discardWill: an operator's close asked for the will not to be
	// published (Server.Kick).
	discardWill bool
	waiters     chan struct{} // made on demand by waitFinished, closed by finish

	// Set while handling CONNECT by the reading goroutine, read-only after.
	clientID  string
	username  string
	keepalive uint16
	clean     bool
	// disconnectSent: a DISCONNECT arrived (reading goroutine only).
	disconnectSent bool
	// epollAdded: the socket is registered with the idle poller (reading
	// side only). Kept here, in the padding after the flags above, so that
	// the struct stays in its 320-byte size class with the v5 pointer.
	epollAdded bool
	sess       *session // set once the session is claimed
	connected  atomic.Bool
	// held: counted by OpenChannels; set just before the connect event is
	// emitted (connected is set just after).
	held atomic.Bool

	will *willMessage // reading goroutine only; nil after DISCONNECT [MQTT-3.14.4-3]
	// packetDeadline: a read deadline bounds the packet being read
	// (packetBegun); reading goroutine only.
	packetDeadline bool
	// willBytes is what the will takes of Server.wills, from CONNECT until
	// it is published, handed to a delayed will, or forgotten (forgetWill).
	willBytes int64
	// v5 is the MQTT 5.0 state, nil for 3.1.1 and 3.1 clients; set while
	// handling CONNECT, before connected.
	v5 *v5State

	// Parking in the idlePoller (with epollAdded above). parkToken is
	// fixed at creation; the others belong to the reading side.
	parkToken    uint64
	idleTimer    *time.Timer  // enforces keepalive while parked
	idleDeadline atomic.Int64 // unix ns; read by the timer under the poller's lock

	outbound
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{s: s, nc: nc}
	c.reader.budget = &s.inbound
	c.reader.midPacket = c.packetBegun
	if a := nc.RemoteAddr(); a != nil {
		c.addr = a.String()
	}
	rand.Read(c.channel[:]) // never fails [crypto/rand]
	if tc, ok := nc.(*tls.Conn); ok {
		c.useTLS(tc)
	} else if ws, ok := nc.(*wsConn); ok {
		c.useWebSocket(ws)
	} else if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.reader.useRawConn(raw)
			if s.idle != nil {
				c.parkToken = s.idle.token()
			}
		}
	}
	return c
}

// channelID returns the channel id: 32 lowercase hex digits. It is kept as
// bytes and formatted on use, to keep idle connections small.
func (c *conn) channelID() string { return hex.EncodeToString(c.channel[:]) }

// remoteAddr returns the client's "ip:port".
func (c *conn) remoteAddr() string { return c.addr }

// tcpKeepalive switches TCP keepalive on (Go's defaults: probes after 15 s
// idle, every 15 s, 9 of them) for a client without MQTT keepalive: the
// broker never times such a client out, so a peer that vanished without a
// FIN or RST (power loss, a dropped NAT mapping) would otherwise stay
// online for good. Listen leaves it off for everyone else.
func (c *conn) tcpKeepalive() {
	if tc, ok := socketOf(c.nc).(interface {
		SetKeepAliveConfig(net.KeepAliveConfig) error
	}); ok {
		if err := tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true}); err != nil {
			c.s.log.Debug("mqtt tcp keepalive not enabled", "channel", c.channelID(), "err", err)
		}
	}
}

// waitFinished returns a channel closed once finish is done.
func (c *conn) waitFinished() <-chan struct{} {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	if c.waiters == nil {
		c.waiters = make(chan struct{})
		if c.finished {
			close(c.waiters)
		}
	}
	return c.waiters
}

// setReason records why the connection ends unless a cause is known.
func (c *conn) setReason(r presence.Reason) {
	c.stateMu.Lock()
	if c.reason == "" {
		c.reason = r
	}
	c.stateMu.Unlock()
}

// closeReason returns why the connection ends, and the successor channel
// when it was taken over.
func (c *conn) closeReason() (presence.Reason, string) {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	if c.reason == "" {
		return presence.ReasonNetworkError, ""
	}
	return c.reason, c.takeoverBy
}

// kick closes the connection from another goroutine for reason r; the
// reading goroutine then finishes it.
func (c *conn) kick(r presence.Reason) {
	c.setReason(r)
	c.close()
}

// takeOver closes the connection because successor, a newer connection
// of the same client id, takes it over [MQTT-3.1.4-2]; its tcpclean names
// the successor.
func (c *conn) takeOver(successor string) {
	c.stateMu.Lock()
	if c.reason == "" {
		c.reason, c.takeoverBy = presence.ReasonTakeover, successor
	}
	c.stateMu.Unlock()
	c.close()
}

// close closes the socket from another goroutine; the reading goroutine
// then finishes the connection.
func (c *conn) close() {
	c.sendDisconnectFor(nil)
	c.nc.Close()
	if c.parkToken != 0 && c.s.idle.take(c.parkToken) {
		c.s.takeUp(c) // parked: nobody else would notice the close
	}
}

// armKeepalive (re)starts the keepalive timer of a connection about to
// park: the read deadline that enforces keepalive [MQTT-3.1.2-24] needs a
// waiting reader, and a parked connection has none.
func (c *conn) armKeepalive() {
	if c.keepalive == 0 {
		return
	}
	d := time.Duration(c.keepalive) * 1500 * time.Millisecond
	c.idleDeadline.Store(time.Now().Add(d).UnixNano())
	if c.idleTimer == nil {
		c.idleTimer = time.AfterFunc(d, c.idleExpired)
	} else {
		c.idleTimer.Reset(d)
	}
}

// idleExpired closes a parked connection whose keepalive ran out.
func (c *conn) idleExpired() {
	// The timer's goroutine is not the server's: counted, it may take the
	// connection up (a goroutine of its own) while Shutdown runs. Once
	// Shutdown has begun it kicks the connection itself.
	if !c.s.enter() {
		return
	}
	defer c.s.wg.Done()
	if !c.s.idle.expire(c) {
		return // taken up meanwhile: its reads enforce the deadline
	}
	c.setReason(presence.ReasonKeepaliveTimeout)
	c.s.stats.keepaliveExpired.Add(1)
	c.sendDisconnectFor(nil)
	c.nc.Close()
	c.s.takeUp(c)
}

// serve runs on the connection's first goroutine: it handles CONNECT, then
// hands the connection on (see waitNext).
func (c *conn) serve() {
	defer c.s.wg.Done()
	if !c.accept() {
		c.finish()
		return
	}
	if c.keepalive == 0 {
		c.nc.SetReadDeadline(time.Time{})
	}
	c.waitNext()
}

// readLoop handles packets until the connection ends or, having handled
// some, it would wait for more: then it hands the connection on.
func (c *conn) readLoop() {
	defer c.s.wg.Done()
	if c.readPackets() {
		c.waitNext()
		return
	}
	c.finish()
}

// waitNext is called by the reading goroutine, about to end, when the
// next read would wait. With nothing buffered the connection parks in the
// idle poller, which starts a goroutine when data comes. Otherwise (or
// without a poller) it continues on a fresh goroutine: handling a packet
// can grow a stack to 4 KiB or more, and the runtime never shrinks a stack
// parked in a network read below 4 KiB, so a new goroutine waits with the
// initial 2 KiB.
func (c *conn) waitNext() {
	c.reader.settle() // what the last packet took: handled, or a waiting connection would hold it
	c.reader.release()
	if c.reader.buffered() == 0 && framingBuffered(c.nc) == 0 && c.s.idle != nil && !c.tlsBuffered() && c.s.idle.park(c) {
		return
	}
	c.s.wg.Add(1) // this goroutine still counts, so Add is safe during Shutdown
	go c.readLoop()
}

// accept reads and handles CONNECT; it reports whether the client is
// connected. Reading and handling are calls of their own, so that the
// reading's frame is gone before the connect event is emitted (see
// Server.emit).
func (c *conn) accept() (connected bool) {
	defer c.recoverPanic()
	p := c.readConnect()
	if p == nil {
		return false
	}
	return c.handleConnect(p)
}

// readConnect reads and decodes CONNECT. It returns nil when the
// connection ends: the failure is recorded, or the CONNECT refused.
//
//go:noinline
func (c *conn) readConnect() *connectPacket {
	cfg := &c.s.cfg
	c.nc.SetReadDeadline(time.Now().Add(cfg.ConnectTimeout))
	if !c.handshakeTLS() {
		return nil
	}
	first, body, err := c.reader.readPacket(c.nc, cfg.MaxPacketSize)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.s.stats.connectTimeouts.Add(1)
		}
		c.fail(err)
		return nil
	}
	c.s.stats.bytesIn.Add(int64(1 + remainingLengthSize(len(body)) + len(body)))
	if t := packetType(first >> 4); t != typeConnect {
		c.fail(malformed("MQTT-3.1.0-1", "first packet is %s, not CONNECT", t))
		return nil
	}
	p, err := decodePacket(first, body)
	if err != nil {
		var refused *refusedError
		if errors.As(err, &refused) {
			var known *connectPacket // for the log and the record, when the client id could be read
			if refused.ClientID != "" {
				known = &connectPacket{ClientID: refused.ClientID}
			}
			c.refuse(refused.Code, known, refused)
			return nil
		}
		c.fail(err)
		return nil
	}
	return p.(*connectPacket)
}

// readPackets reads and handles packets. It returns false when the
// connection ends, true when it handled packets and has no more buffered:
// the next read would wait.
func (c *conn) readPackets() (more bool) {
	defer c.recoverPanic()
	keepalive := time.Duration(c.keepalive) * 1500 * time.Millisecond // [MQTT-3.1.2-24]
	handled := false
	for {
		if handled && c.reader.buffered() == 0 {
			return true
		}
		if keepalive > 0 {
			c.nc.SetReadDeadline(time.Now().Add(keepalive))
		} else if c.packetDeadline {
			c.nc.SetReadDeadline(time.Time{}) // the packet it bounded is in
			c.packetDeadline = false
		}
		first, body, err := c.reader.readPacket(c.nc, c.s.cfg.MaxPacketSize)
		if err != nil {
			c.fail(err)
			return false
		}
		c.s.stats.bytesIn.Add(int64(1 + remainingLengthSize(len(body)) + len(body)))
		p, err := c.decode(first, body)
		if err == nil {
			err = c.handle(p)
		}
		if err != nil {
			c.fail(err)
			return false
		}
		handled = true
	}
}

// packetBegun is the reader's midPacket: once part of a packet is in,
// the rest must come within PacketTimeout when nothing else bounds the
// wait — keepalive 0, after CONNECT (before it, ConnectTimeout does).
func (c *conn) packetBegun() {
	if c.keepalive != 0 || c.packetDeadline || !c.connected.Load() {
		return
	}
	c.packetDeadline = true
	c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.PacketTimeout))
}

// fail records the cause of the end of the connection.
func (c *conn) fail(err error) {
	var reason presence.Reason
	switch {
	case errors.Is(err, errDisconnected):
		reason = presence.ReasonClientDisconnect
	case errors.Is(err, errInboundBudget):
		reason = presence.ReasonSlowConsumer
		c.s.stats.inboundRefused.Add(1)
	case isProtocolError(err), errors.Is(err, io.ErrUnexpectedEOF):
		reason = presence.ReasonProtocolError
		c.s.stats.protocolErrors.Add(1)
		c.s.log.Debug("mqtt protocol error", "channel", c.channelID(), "client", c.clientID, "remote", c.remoteAddr(), "err", err)
	case errors.Is(err, os.ErrDeadlineExceeded) && c.packetDeadline:
		reason = presence.ReasonProtocolError // a packet begun and never finished
		c.s.stats.protocolErrors.Add(1)
		c.s.log.Debug("mqtt packet not completed in time", "channel", c.channelID(), "client", c.clientID, "remote", c.remoteAddr(), "timeout", c.s.cfg.PacketTimeout)
	case errors.Is(err, os.ErrDeadlineExceeded):
		reason = presence.ReasonKeepaliveTimeout
		if c.connected.Load() {
			c.s.stats.keepaliveExpired.Add(1)
		}
	case peerClosed(err):
		reason = presence.ReasonClientClosed
	default:
		reason = presence.ReasonNetworkError
	}
	c.setReason(reason)
	c.sendDisconnectFor(err) // a v5 client is told why [MQTT-4.13.1-1]
}

// ioFailureReason is the close reason of a failed read or write that is not
// a protocol matter: the peer's own FIN or RST is client_closed;
// network_error is left for failures nobody chose (a timeout, an
// unreachable peer, TCP keepalive expiry).
func ioFailureReason(err error) presence.Reason {
	if peerClosed(err) {
		return presence.ReasonClientClosed
	}
	return presence.ReasonNetworkError
}

// peerClosed reports whether err means the peer closed the connection: a
// FIN (EOF on read) or an RST (ECONNRESET; EPIPE on a write after it).
func peerClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// recoverPanic turns a panic of this connection into its closing, so one
// client can never crash the broker.
func (c *conn) recoverPanic() {
	if r := recover(); r != nil {
		c.setReason(reasonInternalError)
		c.s.log.Error("mqtt connection handler panicked", "channel", c.channelID(), "panic", r, "stack", string(debug.Stack()))
	}
}

// publishWill publishes and forgets the will; a panic (of an Authorizer)
// is logged, so finish still runs to the end.
func (c *conn) publishWill() {
	defer c.recoverPanic()
	will, bytes := c.will, c.willBytes
	c.will, c.willBytes = nil, 0
	c.s.publishWill(c, will, bytes)
}

// forgetWill drops the will without publishing it (a DISCONNECT, a
// discarding kick, the connection's end) and gives back what it took.
func (c *conn) forgetWill() {
	c.will = nil
	c.s.wills.give(c.willBytes)
	c.willBytes = 0
}

// willOverhead is what a will is counted for beyond its topic and payload:
// its struct, properties and the conn's reference to it.
const willOverhead = 64

// willSize is what a will counts for against Config.MaxWillBytesTotal.
func willSize(w *willMessage) int64 { return int64(len(w.Topic)+len(w.Payload)) + willOverhead }

// emitTCPClean emits the channel's tcpclean and publishes its presence
// message: a call of its own, so that the event stays out of finish's
// frame (see Server.emit).
//
//go:noinline
func (c *conn) emitTCPClean(reason presence.Reason, successor string) {
	var e presence.Event
	c.s.event(&e, c, presence.EventTCPClean)
	e.Reason, e.TakeoverBy = reason, successor
	if code, ok := c.disconnectReasonCode(); ok { // MQTT 5: what the peers told each other
		n := int(code)
		e.ReasonCode = &n
	}
	c.s.emit(&e)
	c.s.publishDisconnected(&e, c)
}

// finish ends the connection: close the socket, publish the will unless
// DISCONNECT discarded it, release the session, and emit tcpclean — exactly
// once, and only for a channel whose connect was emitted.
func (c *conn) finish() {
	c.nc.Close()
	c.reader.settle()
	if c.idleTimer != nil {
		c.idleTimer.Stop()
	}
	c.stopOutbound()
	if c.connected.Load() {
		reason, successor := c.closeReason()
		if reason == presence.ReasonTakeover {
			c.s.stats.takeovers.Add(1)
		}
		c.stateMu.Lock()
		discardWill := c.discardWill
		c.stateMu.Unlock()
		if c.will != nil && !discardWill {
			c.publishWill()
		}
		if c.sess != nil { // nil when the server stopped during a takeover
			c.s.detach(c)
		}
		c.emitTCPClean(reason, successor)
		c.connected.Store(false)
		c.s.stats.channels.Add(-1)
	} else if c.sess != nil {
		c.s.detach(c)
	}
	c.forgetWill() // not published: discarded, refused, or none
	c.s.removeConn(c)
	c.stateMu.Lock()
	c.finished = true
	if c.waiters != nil {
		close(c.waiters)
	}
	c.stateMu.Unlock()
}
