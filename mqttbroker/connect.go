package mqttbroker

import (
	"errors"

	"github.com/presenced/presenced/presence"
)

// handleConnect validates and authenticates CONNECT, takes the session over
// from an older connection of the same client, emits the connect event and
// answers CONNACK. It reports whether the connection is accepted.
func (c *conn) handleConnect(p *connectPacket) bool {
	s := c.s
	clientID := p.ClientID
	switch {
	case clientID == "" && (!p.CleanSession || p.ProtocolLevel == 3):
		// [MQTT-3.1.3-8] a zero-byte id needs CleanSession=1; 3.1 never
		// allowed one.
		return c.refuse(connRefusedIdentifier, malformed("MQTT-3.1.3-8", "empty client id with cleanSession=0"))
	case clientID == "":
		clientID = "auto-" + newID() // [MQTT-3.1.3-6] the server assigns a unique id
	default:
		if err := presence.ValidateClientID(clientID); err != nil { // [MQTT-3.1.3-9]
			return c.refuse(connRefusedIdentifier, err)
		}
	}
	if code, err := s.authenticate(p, clientID, c.remoteAddr()); code != connAccepted {
		return c.refuse(code, err)
	}
	if p.Will != nil {
		if err := s.checkTopicLimits(p.Will.Topic); err != nil {
			return c.refuse(connRefusedNotAuth, err)
		}
		if s.cfg.Authorizer != nil && !s.cfg.Authorizer.CanPublish(clientID, p.Username, p.Will.Topic) {
			s.stats.deniedPublishes.Add(1)
			return c.refuse(connRefusedNotAuth, errors.New("will topic not authorized"))
		}
	}

	c.clientID = clientID
	c.username = p.Username
	c.keepalive = p.Keepalive
	if p.Keepalive == 0 {
		c.tcpKeepalive()
	}
	c.clean = p.CleanSession
	present, ok := s.attach(c)
	if !ok {
		return false
	}

	e := s.event(c, presence.EventConnect)
	e.Username = p.Username
	e.Keepalive = int(p.Keepalive)
	e.CleanSession = &p.CleanSession
	// Counted as held before its connect is emitted, so a channel-set report
	// (OpenChannels) never misses a channel whose connect came before it.
	c.held.Store(true)
	if err := s.emit(e); err != nil {
		// The connection's presence could not be recorded: refuse it and
		// emit nothing more for it (see EventSink).
		c.held.Store(false)
		return c.refuse(connRefusedUnavailable, err)
	}
	c.connected.Store(true)
	s.stats.channels.Add(1)
	s.stats.connects.Add(1)
	c.will = p.Will // stored only now, so a refused CONNECT never publishes it

	// [MQTT-3.2.2-1..3] session present only for a resumed persistent
	// session; MQTT 3.1 has no such flag (the byte is reserved there).
	present = present && p.ProtocolLevel == 4
	if err := c.send(&connackPacket{SessionPresent: present, ReturnCode: connAccepted}); err != nil {
		c.setReason(presence.ReasonNetworkError)
		return false
	}
	c.startOutbound()
	// [MQTT-4.4.0-1] resend unacknowledged messages, then what was queued.
	s.resume(c)
	return true
}

// refuse answers CONNECT with a refusing CONNACK and reports false; the
// connection then closes [MQTT-3.2.2-5] with no events emitted.
func (c *conn) refuse(code byte, cause error) bool {
	c.s.stats.refused.Add(1)
	c.s.log.Debug("mqtt connect refused", "remote", c.remoteAddr(), "code", code, "err", cause)
	// [MQTT-3.2.2-4] session present is 0 with a non-zero return code.
	c.send(&connackPacket{ReturnCode: code})
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

// attach makes c the connection of its client's session. An older
// connection of the same client id is closed first with reason takeover
// [MQTT-3.1.4-2], and attach waits until it has finished, so its tcpclean
// (and will) come before c's connect. It reports whether a stored session
// was resumed, and false when the server stops meanwhile.
func (s *Server) attach(c *conn) (present, ok bool) {
	for {
		s.sessMu.Lock()
		sess := s.sessions[c.clientID]
		if sess != nil {
			sess.mu.Lock()
			old := sess.owner
			sess.mu.Unlock()
			if old != nil {
				s.sessMu.Unlock()
				old.kick(presence.ReasonTakeover)
				select {
				case <-old.waitFinished():
					continue
				case <-s.quit:
					return false, false
				}
			}
			if c.clean || sess.clean {
				// [MQTT-3.1.2-6] CleanSession=1 discards any previous session.
				s.discardLocked(sess)
				sess = nil
			}
		}
		present = sess != nil
		if sess == nil {
			sess = newSession(c.clientID, c.clean)
			s.sessions[c.clientID] = sess
			s.stats.sessions.Add(1)
		}
		sess.mu.Lock()
		sess.owner = c // deliveries start in resume, after CONNACK
		sess.expireAt = 0
		sess.mu.Unlock()
		s.sessMu.Unlock()
		c.sess = sess
		return present, true
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
	if !sess.clean && s.cfg.SessionExpiry > 0 {
		sess.expireAt = s.cfg.Now().Add(s.cfg.SessionExpiry).UnixNano()
	}
	sess.mu.Unlock()
	if sess.clean {
		s.discardLocked(sess)
	}
}
