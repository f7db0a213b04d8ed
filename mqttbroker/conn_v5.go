package mqttbroker

import (
	"errors"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/presenced/presenced/presence"
)

// topicAliasMaximum is the Topic Alias Maximum the broker offers a v5
// client [MQTT-3.2.2.3.8]: at most this many topics (of MaxTopicLength
// bytes each) are remembered per connection.
const topicAliasMaximum = 10

// disconnectWriteTimeout bounds the wait for a write in progress before a
// server-sent DISCONNECT (lockForDisconnect), and its own write over TLS or
// WebSocket (on a plain socket that write never waits): it is a courtesy
// before the socket closes, never a reason to wait long.
const disconnectWriteTimeout = 20 * time.Millisecond

// v5State is the MQTT 5.0 state of a connection. It is allocated only for
// v5 clients, so a 3.1.1 connection pays one nil pointer for it.
type v5State struct {
	// Negotiated in CONNECT (reading goroutine; read-only after CONNACK
	// except sessionExpiry, which the client's DISCONNECT may change).
	sessionExpiry  uint32 // seconds; 0: the session ends with the connection
	maxPacketOut   int    // the client's Maximum Packet Size; 0: no limit
	receiveMaximum int    // the client's Receive Maximum [MQTT-3.1.2.11.3]
	// topicAliases maps inbound Topic Aliases (index alias-1) to topics
	// (reading goroutine only).
	topicAliases []string
	// noProblemInfo: the client's Request Problem Information was 0, so no
	// Reason String is added to its acknowledgements [MQTT-3.1.2-29].
	noProblemInfo bool
	// aliasesOut assigns the Topic Aliases the server sends; nil when the
	// client takes none (v5_topic_alias.go). Guarded by the conn's wmu.
	aliasesOut *outboundAliases

	acked atomic.Bool // CONNACK is written: a DISCONNECT may be sent
	// disconnectWritten: the server sent DISCONNECT; nothing may follow
	// it [MQTT-3.14.4-1]. Guarded by the conn's wmu.
	disconnectWritten bool
	// reasonCode is the DISCONNECT Reason Code that ended the connection,
	// sent by either side; hasReasonCode says there is one. Guarded by the
	// conn's stateMu.
	reasonCode    byte
	hasReasonCode bool
}

// v5Code is the MQTT 5.0 CONNACK Reason Code of a 3.1.1 return code.
func v5Code(code byte) byte {
	switch code {
	case connAccepted:
		return rcSuccess
	case connRefusedProtocol:
		return rcUnsupportedVersion
	case connRefusedIdentifier:
		return rcClientIDNotValid
	case connRefusedUnavailable:
		return rcServerUnavailable
	case connRefusedBadAuth:
		return rcBadUserNameOrPassword
	case connRefusedNotAuth:
		return rcNotAuthorized
	}
	return rcUnspecified
}

// disconnectCode is the Reason Code of the DISCONNECT the server sends a
// v5 client whose connection ends for reason; ok is false when the server
// sends none (the client closed or sent DISCONNECT itself, or the network
// failed).
func disconnectCode(reason presence.Reason) (code byte, ok bool) {
	switch reason {
	case presence.ReasonTakeover:
		return rcSessionTakenOver, true // [MQTT-3.1.4-3]
	case presence.ReasonKeepaliveTimeout:
		return rcKeepAliveTimeout, true
	case presence.ReasonServerShutdown:
		return rcServerShuttingDown, true
	case presence.ReasonAPIDisconnect:
		return rcAdministrativeAction, true
	case presence.ReasonSlowConsumer:
		return rcQuotaExceeded, true
	case presence.ReasonProtocolError:
		return rcMalformed, true
	case reasonInternalError:
		return rcImplementationSpecific, true
	}
	return 0, false
}

// decode decodes a packet after CONNECT in the connection's protocol.
func (c *conn) decode(first byte, body []byte) (packet, error) {
	if c.v5 != nil {
		return decodePacketV5(first, body)
	}
	return decodePacket(first, body)
}

// persistentSession reports whether the session outlives the connection:
// cleanSession=0 in 3.1.1, a Session Expiry Interval above 0 in 5.0
// [MQTT-3.1.2-23].
func (c *conn) persistentSession() bool {
	if c.v5 != nil {
		return c.v5.sessionExpiry > 0
	}
	return !c.clean
}

// sessionExpiry is how long c's session outlives it: the client's Session
// Expiry Interval capped by Config.SessionExpiry (0: the server default).
func (c *conn) sessionExpiry() time.Duration {
	if c.v5 == nil || c.v5.sessionExpiry == 0xFFFFFFFF {
		return c.s.cfg.SessionExpiry
	}
	d := time.Duration(c.v5.sessionExpiry) * time.Second
	if c.s.cfg.SessionExpiry > 0 {
		d = min(d, c.s.cfg.SessionExpiry)
	}
	return d
}

// inflightWindow is the number of QoS 1 and 2 messages that may await the
// client's acknowledgement: InflightWindow, or fewer if a v5 client's
// Receive Maximum says so [MQTT-3.3.4-9].
func (c *conn) inflightWindow() int {
	if c.v5 != nil {
		return min(c.s.cfg.InflightWindow, c.v5.receiveMaximum)
	}
	return c.s.cfg.InflightWindow
}

// fitsClient reports whether a packet of n bytes may be sent: never above
// a v5 client's Maximum Packet Size [MQTT-3.1.2-24].
func (c *conn) fitsClient(n int) bool {
	return c.v5 == nil || c.v5.maxPacketOut == 0 || n <= c.v5.maxPacketOut
}

// negotiateV5 takes the v5 parameters of CONNECT and returns the CONNACK
// properties that tell the client the server's side [MQTT-3.2.2.3].
func (c *conn) negotiateV5(p *connectPacket, assignedID string) *properties {
	st := &v5State{receiveMaximum: 65535}
	if p.Props.has(propSessionExpiry) {
		st.sessionExpiry = p.Props.SessionExpiry
	}
	if p.Props.has(propReceiveMaximum) {
		st.receiveMaximum = int(p.Props.ReceiveMaximum)
	}
	if p.Props.has(propMaximumPacketSize) {
		st.maxPacketOut = int(min(p.Props.MaximumPacketSize, maxRemainingLength+5))
	}
	st.noProblemInfo = p.Props.has(propRequestProblemInfo) && p.Props.RequestProblemInfo == 0
	if p.Props.has(propTopicAliasMaximum) && p.Props.TopicAliasMaximum > 0 {
		st.aliasesOut = &outboundAliases{max: min(int(p.Props.TopicAliasMaximum), maxOutboundTopicAliases)}
	}
	c.v5 = st
	cfg := &c.s.cfg
	ack := &properties{
		ReceiveMaximum:    uint16(min(cfg.MaxUnreleasedQoS2, 65535)),
		MaximumPacketSize: uint32(cfg.MaxPacketSize),
		TopicAliasMaximum: topicAliasMaximum,
	}
	for _, id := range []byte{propReceiveMaximum, propMaximumPacketSize, propTopicAliasMaximum} {
		ack.set(id)
	}
	if assignedID != "" {
		ack.AssignedClientID = assignedID // [MQTT-3.2.2-16]
		ack.set(propAssignedClientID)
	}
	if keepalive, ok := serverKeepAlive(p.Keepalive, cfg.MaxKeepalive); ok {
		// The client must use the server's value [MQTT-3.2.2-21], and the
		// broker times it out by it: p.Keepalive is what handleConnect
		// enforces and the connect event records.
		p.Keepalive = keepalive
		ack.ServerKeepAlive = keepalive
		ack.set(propServerKeepAlive)
	}
	// Request Response Information is never refused, and never answered:
	// see README, MQTT 5.0 (the server MAY send none [MQTT-3.1.2-28]).
	if st.sessionExpiry > 0 && cfg.SessionExpiry > 0 {
		if granted := max(uint32(c.sessionExpiry()/time.Second), 1); granted != st.sessionExpiry {
			// The server's cap, told to the client [MQTT-3.2.2.3.2].
			ack.SessionExpiry = granted
			ack.set(propSessionExpiry)
			st.sessionExpiry = granted
		}
	}
	return ack
}

// resolveTopicAlias applies a v5 PUBLISH's Topic Alias: a topic with an
// alias sets it, an empty topic uses it [MQTT-3.3.2.3.4].
func (c *conn) resolveTopicAlias(p *publishPacket) error {
	if !p.Props.has(propTopicAlias) {
		return nil
	}
	alias := int(p.Props.TopicAlias)
	if alias > topicAliasMaximum {
		return violation(rcTopicAliasInvalid, "MQTT-3.3.2-9", "topic alias %d above the maximum %d", alias, topicAliasMaximum)
	}
	st := c.v5
	if p.Topic != "" {
		if len(st.topicAliases) < alias {
			st.topicAliases = append(st.topicAliases, make([]string, alias-len(st.topicAliases))...)
		}
		st.topicAliases[alias-1] = p.Topic
		return nil
	}
	if alias > len(st.topicAliases) || st.topicAliases[alias-1] == "" {
		return violation(rcProtocolError, "MQTT-3.3.4-7", "topic alias %d not set on this connection", alias)
	}
	p.Topic = st.topicAliases[alias-1]
	return nil
}

// handleDisconnectV5 acts on a v5 client's DISCONNECT: Reason Code 0x04
// keeps the will to be published [MQTT-3.14.4-3]; a Session Expiry
// Interval may change the session's, but not from 0 [MQTT-3.14.2-2].
func (c *conn) handleDisconnectV5(p *disconnectPacket) error {
	st := c.v5
	if p.Props.has(propSessionExpiry) {
		if st.sessionExpiry == 0 && p.Props.SessionExpiry != 0 {
			return violation(rcProtocolError, "MQTT-3.14.2-2", "DISCONNECT sets a session expiry after CONNECT had 0")
		}
		st.sessionExpiry = p.Props.SessionExpiry
		if st.sessionExpiry > 0 && c.s.cfg.SessionExpiry > 0 {
			st.sessionExpiry = max(uint32(c.sessionExpiry()/time.Second), 1)
		}
	}
	c.recordReasonCode(p.Reason)
	if p.Reason != rcDisconnectWithWill {
		c.forgetWill()
	}
	c.disconnectSent = true
	var e presence.Event
	c.s.event(&e, c, presence.EventDisconnect)
	code := int(p.Reason)
	e.ReasonCode = &code
	c.s.emit(&e)
	return errDisconnected
}

// recordReasonCode keeps the first DISCONNECT Reason Code of the
// connection, whichever side sent it.
func (c *conn) recordReasonCode(code byte) {
	c.stateMu.Lock()
	if !c.v5.hasReasonCode {
		c.v5.reasonCode, c.v5.hasReasonCode = code, true
	}
	c.stateMu.Unlock()
}

// disconnectReasonCode returns the DISCONNECT Reason Code that ended a v5
// connection, if any.
func (c *conn) disconnectReasonCode() (byte, bool) {
	if c.v5 == nil {
		return 0, false
	}
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	return c.v5.reasonCode, c.v5.hasReasonCode
}

// sendDisconnect tells a v5 client why the server closes its connection
// (code), once, before the socket closes [MQTT-3.14.0]. It never waits for
// a write in progress: the close must not hang on a client that does not
// read.
func (c *conn) sendDisconnect(code byte) {
	// c.v5 is set before connected, and never again: reading it after
	// connected is safe from any goroutine.
	if !c.connected.Load() {
		return
	}
	st := c.v5
	if st == nil || !c.lockForDisconnect() {
		return
	}
	defer c.wmu.Unlock()
	// acked is read under wmu: sendConnack sets it before it lets go of
	// wmu, so a close that follows the client's reading its CONNACK finds
	// it here even when the CONNACK's writer has not let go yet.
	if st.disconnectWritten || !st.acked.Load() {
		return
	}
	st.disconnectWritten = true
	c.recordReasonCode(code)
	wire := (&disconnectPacket{Reason: code}).appendTo(nil)
	var n int
	if tc, ok := c.nc.(*net.TCPConn); ok {
		// A plain socket: one non-blocking write, whatever the send buffer.
		if raw, err := tc.SyscallConn(); err == nil {
			raw.Write(func(fd uintptr) bool {
				n, _ = syscall.Write(int(fd), wire)
				n = max(n, 0)
				return true // never wait for the socket to be writable
			})
		}
	} else {
		// TLS or WebSocket framing: a write bounded by a short deadline.
		c.nc.SetWriteDeadline(time.Now().Add(disconnectWriteTimeout))
		n, _ = c.nc.Write(wire)
	}
	c.s.stats.bytesOut.Add(int64(n))
}

// lockForDisconnect takes wmu for the DISCONNECT, waiting at most
// disconnectWriteTimeout for a write in progress. A write to a client that
// reads ends within microseconds (the CONNACK just written, a PUBLISH), and
// giving up at once lost the DISCONNECT of a close that came right after
// the client read its CONNACK (TestV5ServerSentDisconnect saw EOF about
// once in ten runs on two busy cores); a write to a client that does not
// read is not waited for beyond that bound. sync.Mutex has no timed lock,
// hence the polling.
func (c *conn) lockForDisconnect() bool {
	if c.wmu.TryLock() {
		return true
	}
	deadline := time.Now().Add(disconnectWriteTimeout)
	backoff := presence.Backoff{Min: 50 * time.Microsecond, Max: time.Millisecond}
	for time.Now().Before(deadline) {
		time.Sleep(backoff.Next())
		if c.wmu.TryLock() {
			return true
		}
	}
	return false
}

// sendDisconnectFor sends the DISCONNECT of the reason the connection
// ends for, if the server sends one for it; cause, when it is a protocol
// error, picks its own Reason Code.
func (c *conn) sendDisconnectFor(cause error) {
	if !c.connected.Load() || c.v5 == nil {
		return
	}
	reason, _ := c.closeReason()
	code, ok := disconnectCode(reason)
	var pe *protocolError
	if errors.As(cause, &pe) && pe.Code != 0 {
		code = pe.Code
	}
	if ok {
		c.sendDisconnect(code)
	}
}
