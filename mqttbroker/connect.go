package mqttbroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/presenced/presenced/mqttbroker/persist"
	"github.com/presenced/presenced/presence"
)

// errWillBudget: the CONNECT's will would pass Config.MaxWillBytesTotal.
var errWillBudget = errors.New("the broker's budget for wills is used up")

// handleConnect validates and authenticates CONNECT, takes the session over
// from an older connection of the same client, emits the connect event and
// answers CONNACK. It reports whether the connection is accepted.
func (c *conn) handleConnect(p *connectPacket) bool {
	s := c.s
	v5 := p.ProtocolLevel == 5
	clientID, assigned, ok := c.admitConnect(p)
	if !ok {
		return false
	}

	var ackProps *properties
	if v5 {
		ackProps = c.negotiateV5(p, assigned) // before connected: see conn.v5
	}
	c.clientID = clientID
	c.username = p.Username
	c.keepalive = p.Keepalive
	if p.Keepalive == 0 {
		c.tcpKeepalive()
	}
	c.clean = p.CleanSession
	if p.Will != nil { // held until the connection ends: budgeted before anything else is done
		n := willSize(p.Will)
		if !s.wills.take(n) {
			s.stats.willsRefused.Add(1)
			return c.refuseWith(connRefusedUnavailable, rcQuotaExceeded, p, errWillBudget)
		}
		c.willBytes = n // given back by forgetWill, however the connection ends
	}
	mark, refusedBefore := s.persist.mark(), s.persist.refusedCount()
	present, err := s.attach(c, func() error { return c.emitConnect(p) })
	switch {
	case errors.Is(err, errTooManySessions):
		return c.refuseWith(connRefusedUnavailable, rcQuotaExceeded, p, err) // v5: the session budget's own code
	case errors.Is(err, errNotRecorded):
		return c.refuse(connRefusedUnavailable, p, err)
	case err != nil:
		return false
	}
	if !c.connected.Load() {
		if err := c.emitConnect(p); err != nil {
			return c.refuse(connRefusedUnavailable, p, err)
		}
	}
	c.will = p.Will // stored only now, so a refused CONNECT never publishes it

	// [MQTT-3.2.2-1..3] session present only for a resumed persistent
	// session; MQTT 3.1 has no such flag (the byte is reserved there).
	present = present && p.ProtocolLevel >= 4
	if err := s.persist.barrier(mark); err != nil { // the session is durable before CONNACK
		return c.refuse(connRefusedUnavailable, p, fmt.Errorf("make the session durable: %w", err))
	}
	if s.persist.refusedCount() != refusedBefore {
		// The store was full for the session: no CONNACK acknowledges a
		// session that would not survive a restart.
		return c.refuseWith(connRefusedUnavailable, rcQuotaExceeded, p, fmt.Errorf("make the session durable: %w", persist.ErrNoSpace))
	}
	if err := c.sendConnack(&connackPacket{SessionPresent: present, ReturnCode: connAccepted, V5: v5, Props: ackProps}); err != nil {
		c.setReason(ioFailureReason(err))
		return false
	}
	c.startOutbound()
	// [MQTT-4.4.0-1] resend unacknowledged messages, then what was queued.
	s.resume(c)
	return true
}

// admitConnect validates and authenticates CONNECT: it returns the client
// id (assigned, when the server assigned it), or ok false when the CONNECT
// was refused. A call of its own, so that its frame is gone before the
// connect event is emitted (see Server.emit).
//
//go:noinline
func (c *conn) admitConnect(p *connectPacket) (clientID, assigned string, ok bool) {
	s := c.s
	clientID = p.ClientID
	v5 := p.ProtocolLevel == 5
	switch {
	case v5 && p.Props.has(propAuthMethod):
		// No enhanced authentication is configured [MQTT-3.1.2.11.9].
		return "", "", c.refuseWith(connRefusedBadAuth, rcBadAuthMethod, p, errors.New("authentication method "+truncateForLog(p.Props.AuthMethod)+" not supported"))
	case clientID == "" && v5:
		// [MQTT-3.1.3-6], [MQTT-3.1.3-7] the server assigns an id and
		// returns it in CONNACK, whatever Clean Start says.
		clientID = "auto-" + newID()
		assigned = clientID
	case clientID == "" && (!p.CleanSession || p.ProtocolLevel == 3):
		// [MQTT-3.1.3-8] a zero-byte id needs CleanSession=1; 3.1 never
		// allowed one.
		return "", "", c.refuse(connRefusedIdentifier, p, malformed("MQTT-3.1.3-8", "empty client id with cleanSession=0"))
	case clientID == "":
		clientID = "auto-" + newID() // [MQTT-3.1.3-6] the server assigns a unique id
	default:
		if err := presence.ValidateClientID(clientID); err != nil { // [MQTT-3.1.3-9]
			return "", "", c.refuse(connRefusedIdentifier, p, err)
		}
	}
	certUser, code, err := c.tlsAdmission(clientID)
	if code != connAccepted {
		return "", "", c.refuse(code, p, err)
	}
	if certUser != "" {
		// The client certificate authenticated the client; its CN is the
		// user name (TLSIdentityCN).
		p.Username, p.HasUsername = certUser, true
	} else if code, err := s.authenticate(p, clientID, c.remoteAddr()); code != connAccepted {
		return "", "", c.refuse(code, p, err)
	}
	if p.Will != nil {
		if !validPayloadFormat(p.Will.Props, p.Will.Payload) {
			return "", "", c.refuseWith(connRefusedNotAuth, rcPayloadFormatInvalid, p, errors.New("will payload is not the UTF-8 it says it is"))
		}
		if err := s.checkTopicLimits(p.Will.Topic); err != nil {
			return "", "", c.refuse(connRefusedNotAuth, p, err)
		}
		if isPresenceTopic(p.Will.Topic) {
			s.stats.presenceForged.Add(1)
			return "", "", c.refuse(connRefusedNotAuth, p, errors.New("will topic is the broker's presence topic"))
		}
		if s.cfg.Authorizer != nil && !s.cfg.Authorizer.CanPublish(clientID, p.Username, p.Will.Topic) {
			s.stats.deniedPublishes.Add(1)
			return "", "", c.refuse(connRefusedNotAuth, p, errors.New("will topic not authorized"))
		}
	}
	return clientID, assigned, true
}

// errNotRecorded: the connect event could not be recorded (see EventSink).
var errNotRecorded = errors.New("connect event not recorded")

// emitConnect records c's connect: once it returns nil the channel is
// open, and its tcpclean will follow whatever happens. On error the
// connection must be refused and nothing more emitted for it.
func (c *conn) emitConnect(p *connectPacket) error {
	s := c.s
	var e presence.Event
	s.event(&e, c, presence.EventConnect)
	e.Username = p.Username
	e.Keepalive = int(p.Keepalive)
	e.CleanSession = &p.CleanSession
	e.ProtocolLevel = int(p.ProtocolLevel)
	c.addTLSDetails(&e)
	// Counted as held before its connect is emitted, so a channel-set report
	// (OpenChannels) never misses a channel whose connect came before it.
	c.held.Store(true)
	if err := s.emit(&e); err != nil {
		c.held.Store(false)
		return fmt.Errorf("%w: %w", errNotRecorded, err)
	}
	c.connected.Store(true)
	s.stats.channels.Add(1)
	s.stats.connects.Add(1)
	if c.v5 != nil {
		s.stats.v5Connects.Add(1)
	}
	s.publishConnected(&e, p.ProtocolLevel)
	return nil
}

// addTLSDetails is tlsDetails kept out of emitConnect's frame, which
// would otherwise hold a tls.ConnectionState on every connect, TLS or
// not (see Server.emit).
//
//go:noinline
func (c *conn) addTLSDetails(e *presence.Event) { c.tlsDetails(e) }

// refuse answers CONNECT with a refusing CONNACK and reports false; the
// connection then closes [MQTT-3.2.2-5] with no events emitted. p is the
// CONNECT, or nil when it could not be decoded. Each refusal is logged —
// with client id, user name and remote address, never the password — under
// a constant message per code, so that a rate-limiting handler can fold
// repeats, and counted by code.
func (c *conn) refuse(code byte, p *connectPacket, cause error) bool {
	return c.refuseWith(code, v5Code(code), p, cause)
}

// refuseWith is refuse with the MQTT 5.0 Reason Code code5 a v5 client is
// sent instead of the 3.1.1 code (which logs and counts the refusal).
func (c *conn) refuseWith(code, code5 byte, p *connectPacket, cause error) bool {
	s := c.s
	ack := &connackPacket{ReturnCode: code}
	if p != nil && p.ProtocolLevel == 5 {
		ack = &connackPacket{ReturnCode: code5, V5: true}
	}
	if int(code) < len(s.stats.refusedByCode) {
		s.stats.refusedByCode[code].Add(1)
	}
	level, msg := slog.LevelWarn, "mqtt connect refused"
	switch code {
	case connRefusedProtocol:
		level, msg = slog.LevelInfo, "mqtt connect refused: unacceptable protocol version"
	case connRefusedIdentifier:
		level, msg = slog.LevelInfo, "mqtt connect refused: identifier rejected"
	case connRefusedUnavailable:
		msg = "mqtt connect refused: server unavailable"
	case connRefusedBadAuth:
		msg = "mqtt connect refused: bad user name or password"
	case connRefusedNotAuth:
		msg = "mqtt connect refused: not authorized"
	}
	var clientID, username string
	if p != nil {
		clientID, username = truncateForLog(p.ClientID), truncateForLog(p.Username)
	}
	s.log.Log(context.Background(), level, msg, "client", clientID, "username", username,
		"remote", c.remoteAddr(), "code", code, "err", cause)
	if s.cfg.OnRefused != nil && p != nil && p.ClientID != "" {
		reason := msg
		if cause != nil {
			reason = msg + ": " + cause.Error()
		}
		s.cfg.OnRefused(presence.RefusedConnect{ClientID: p.ClientID, Time: s.cfg.Now().UnixMilli(), ReturnCode: int(ack.ReturnCode),
			Reason: truncateForLog(reason), ClientIP: c.remoteAddr(), Username: truncateForLog(p.Username), Node: s.cfg.Node})
	}
	// [MQTT-3.2.2-4] session present is 0 with a non-zero return code.
	c.send(ack)
	return false
}

// authenticate decides admission; it returns connAccepted or the CONNACK
// code refusing the client.
func (s *Server) authenticate(p *connectPacket, clientID, remote string) (byte, error) {
	if !p.HasUsername || s.cfg.Authenticator == nil {
		if s.cfg.AllowAnonymous {
			return connAccepted, nil
		}
		return connRefusedNotAuth, errors.New("anonymous clients are not allowed")
	}
	err := s.cfg.Authenticator.Authenticate(Credentials{
		ClientID: clientID, HasUsername: p.HasUsername, Username: p.Username,
		HasPassword: p.HasPassword, Password: p.Password, RemoteAddr: remote,
	})
	switch {
	case err == nil:
		return connAccepted, nil
	case errors.Is(err, ErrNotAuthorized):
		return connRefusedNotAuth, err
	}
	return connRefusedBadAuth, err
}

// errTooManySessions refuses a CONNECT that would create a persistent
// session beyond MaxPersistentSessions (CONNACK 0x03).
var errTooManySessions = errors.New("too many persistent sessions")

// errStopping: the server stopped while a CONNECT waited for a takeover.
var errStopping = errors.New("server stopping")

// attach makes c the connection of its client's session. An older
// connection of the same client id is taken over [MQTT-3.1.4-2]: announce
// (which records c's connect) runs first, so c is admitted before the old
// connection is closed and its tcpclean, naming c as the successor, always
// follows c's connect; attach then waits until the old connection has
// finished (its will published, its session released). Without a takeover
// announce is not called: the caller records the connect after attach.
// attach reports whether a stored session was resumed; it fails with
// announce's error (the old connection stays), with errStopping when the
// server stops meanwhile, and with errTooManySessions when c would need a
// new persistent session beyond MaxPersistentSessions — a resumed one is
// always admitted.
func (s *Server) attach(c *conn, announce func() error) (present bool, err error) {
	// reserved: a persistent-session slot counted for c before a takeover,
	// since a takeover, once announced, is never refused afterwards.
	reserved := false
	defer func() {
		if reserved {
			s.sessMu.Lock()
			s.stats.persistent.Add(-1)
			s.sessMu.Unlock()
		}
	}()
	for {
		s.sessMu.Lock()
		sess := s.sessions[c.clientID]
		if sess != nil && s.discardIfExpiredLocked(sess, s.cfg.Now()) {
			sess = nil
		}
		if sess != nil {
			sess.mu.Lock()
			old := sess.owner
			s.cancelWillLocked(sess) // a connection took the session up [MQTT-3.1.3-9]
			sess.mu.Unlock()
			if old != nil {
				if !c.connected.Load() {
					// c will need a slot of its own if the old session is
					// clean and discarded with its connection.
					if c.persistentSession() && sess.clean && !reserved {
						if s.stats.persistent.Load() >= int64(s.cfg.MaxPersistentSessions) {
							s.sessMu.Unlock()
							s.stats.sessionsRefused.Add(1)
							return false, errTooManySessions
						}
						s.stats.persistent.Add(1)
						reserved = true
					}
					s.sessMu.Unlock()
					if err := announce(); err != nil {
						return false, err
					}
				} else {
					s.sessMu.Unlock()
				}
				old.takeOver(c.channelID())
				select {
				case <-old.waitFinished():
					continue
				case <-s.quit:
					return false, errStopping
				}
			}
			if c.clean || sess.clean {
				// [MQTT-3.1.2-6] CleanSession=1 discards any previous session.
				s.discardLocked(sess)
				sess = nil
			}
		}
		present = sess != nil
		if present && !c.persistentSession() {
			// A v5 client resumes its session with expiry 0: it now ends
			// with the connection [MQTT-3.1.2-23].
			s.persistSessionOp(sess, persist.DeleteSession(sess.clientID))
			sess.clean = true
			s.stats.persistent.Add(-1)
		}
		if sess == nil {
			if c.persistentSession() {
				// Counted under sessMu, like every change to it. A reserved
				// slot is used now; an announced connection is admitted even
				// without one (its session vanished while it waited).
				switch {
				case reserved:
					reserved = false
				case c.connected.Load():
					s.stats.persistent.Add(1)
				case s.stats.persistent.Load() >= int64(s.cfg.MaxPersistentSessions):
					s.sessMu.Unlock()
					s.stats.sessionsRefused.Add(1)
					return false, errTooManySessions
				default:
					s.stats.persistent.Add(1)
				}
			}
			sess = newSession(c.clientID, !c.persistentSession())
			s.sessions[c.clientID] = sess
			s.stats.sessions.Add(1)
		}
		sess.mu.Lock()
		sess.owner = c // deliveries start in resume, after CONNACK
		sess.expireAt = 0
		s.persistSessionInfo(sess) // durable by the barrier before CONNACK
		sess.mu.Unlock()
		s.sessMu.Unlock()
		c.sess = sess
		return present, nil
	}
}

// detach releases c's session: a clean one is discarded [MQTT-3.1.2-6], a
// persistent one waits for its client [MQTT-3.1.2-4] until SessionExpiry.
func (s *Server) detach(c *conn) {
	sess := c.sess
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	sess.mu.Lock()
	if sess.owner != c {
		sess.mu.Unlock()
		return
	}
	sess.owner, sess.conn = nil, nil
	if !sess.clean && !c.persistentSession() {
		// A v5 DISCONNECT set the session expiry to 0 [MQTT-3.14.2.2.2].
		s.persistSessionOp(sess, persist.DeleteSession(sess.clientID))
		sess.clean = true
		s.stats.persistent.Add(-1)
	}
	if expiry := c.sessionExpiry(); !sess.clean && expiry > 0 {
		sess.expireAt = s.cfg.Now().Add(expiry).UnixNano()
	}
	s.persistSessionInfo(sess) // staged only: a lost expiry restarts at the next start
	sess.mu.Unlock()
	if sess.clean {
		s.discardLocked(sess)
	}
}
