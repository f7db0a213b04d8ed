package mqttbroker

import "github.com/presenced/presenced/presence"

// SessionCounts returns what the session of a connected client holds now —
// its subscriptions, QoS 1 and 2 messages in flight to it and queued
// behind them — with the id of the channel that holds the session. ok is
// false when the client is not connected to this broker. The counts are a
// moment's reading, for operators (GET /clients/{id}/channels in serve
// mode); they take the session's lock briefly, as a delivery does.
func (s *Server) SessionCounts(clientID string) (channelID string, counts presence.SessionCounts, ok bool) {
	s.sessMu.Lock()
	sess := s.sessions[clientID]
	s.sessMu.Unlock()
	if sess == nil {
		return "", counts, false
	}
	sess.mu.Lock()
	c := sess.owner
	counts = presence.SessionCounts{Subscriptions: len(sess.subs), InFlight: len(sess.inflight), Queued: len(sess.queue)}
	sess.mu.Unlock()
	if c == nil || !c.connected.Load() {
		return "", presence.SessionCounts{}, false
	}
	return c.channelID(), counts, true
}
