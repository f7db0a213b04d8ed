package mqttbroker

import (
	"context"

	"github.com/presenced/presenced/presence"
)

// Kick closes the connection of clientID, if this broker holds one, as an
// operator's API call does (AWS IoT's DeleteConnection, EMQX's kick): its
// tcpclean carries reason api_disconnect. discardWill drops the client's
// will instead of publishing it (AWS's preventWillMessage). Kick waits
// until the connection has finished — its tcpclean emitted — or ctx ends,
// and returns the closed channel's id; ok is false when the client is not
// connected here.
func (s *Server) Kick(ctx context.Context, clientID string, discardWill bool) (channelID string, ok bool, err error) {
	s.sessMu.Lock()
	var c *conn
	if sess := s.sessions[clientID]; sess != nil {
		sess.mu.Lock()
		c = sess.owner
		sess.mu.Unlock()
	}
	s.sessMu.Unlock()
	if c == nil || !c.connected.Load() {
		return "", false, nil
	}
	c.stateMu.Lock()
	if c.reason == "" {
		c.reason = presence.ReasonAPIDisconnect
		c.discardWill = discardWill
	}
	c.stateMu.Unlock()
	c.close()
	s.stats.kicked.Add(1)
	select {
	case <-c.waitFinished():
		return c.channelID(), true, nil
	case <-ctx.Done():
		return c.channelID(), true, ctx.Err()
	}
}
