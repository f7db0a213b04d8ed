package mqttbroker

import "time"

// MQTT 5.0 Will Delay Interval [MQTT-3.1.3.2.2]: the will of a v5 client
// that asked for a delay is published that much later (never later than
// its session ends), and not at all if a connection takes the session up
// first [MQTT-3.1.3-9]. A session holds at most one such will, so the
// wills waiting are bounded by the sessions (MaxPersistentSessions).

// delayedWill is a will waiting for its delay on a session.
type delayedWill struct {
	timer   *time.Timer
	publish func() // publishes, and gives bytes back
	bytes   int64  // what it takes of Server.wills
}

// willDelay is how long c's will waits: its Will Delay Interval, capped by
// the time its session outlives it; 0 publishes it at once.
func (c *conn) willDelay(w *willMessage) time.Duration {
	if c.v5 == nil || !w.Props.has(propWillDelay) || w.Props.WillDelay == 0 || !c.persistentSession() {
		return 0
	}
	d := time.Duration(w.Props.WillDelay) * time.Second
	if expiry := c.sessionExpiry(); expiry > 0 {
		d = min(d, expiry)
	}
	return d
}

// publishWillLater arms c's will on its session to be published after
// delay; it keeps the bytes the will takes of s.wills until then.
func (s *Server) publishWillLater(c *conn, w *willMessage, delay time.Duration, bytes int64) {
	clientID, username, sess := c.clientID, c.username, c.sess
	dw := &delayedWill{bytes: bytes, publish: func() {
		defer s.wills.give(bytes)
		s.publishWillNow(clientID, username, w)
	}}
	s.stats.willsDelayed.Add(1)
	sess.mu.Lock()
	defer sess.mu.Unlock()
	s.cancelWillLocked(sess) // a session keeps one will: the newest
	// The callback takes sess.mu, so it runs after pendingWill is set.
	dw.timer = time.AfterFunc(delay, func() {
		sess.mu.Lock()
		due := sess.pendingWill == dw
		if due {
			sess.pendingWill = nil
		}
		sess.mu.Unlock()
		if due {
			s.goFunc(dw.publish) // refused once the server stops
		}
	})
	sess.pendingWill = dw
}

// cancelWillLocked forgets a will waiting on sess, because a connection
// took the session up [MQTT-3.1.3-9]; the caller holds sess.mu.
func (s *Server) cancelWillLocked(sess *session) {
	if sess.pendingWill != nil {
		sess.pendingWill.timer.Stop()
		s.wills.give(sess.pendingWill.bytes)
		sess.pendingWill = nil
		s.stats.willsCancelled.Add(1)
	}
}

// releaseWillLocked publishes now, on a goroutine of the server, a will
// waiting on sess, because the session ends [MQTT-3.1.3.2.2]; the caller
// holds sess.mu (and maybe s.sessMu, hence the goroutine).
func (s *Server) releaseWillLocked(sess *session) {
	if dw := sess.pendingWill; dw != nil {
		dw.timer.Stop()
		sess.pendingWill = nil
		s.goFunc(dw.publish)
	}
}
