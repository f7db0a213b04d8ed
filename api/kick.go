package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/presenced/presenced/presence"
)

// Kicker closes a client's connection on whichever broker node holds it:
// directly where this process holds the broker (presenced serve, see
// mqttbroker.Server.Kick), through a command on RocketMQ's control topic
// where it does not (presenced api). found is false when the client has
// no connection to close.
type Kicker interface {
	Kick(ctx context.Context, clientID string, discardWill bool) (result KickResult, found bool, err error)
}

// KickResult says what became of a kick.
type KickResult struct {
	// ChannelID and Node name the connection kicked (with several open
	// channels, the newest; Channels lists them all).
	ChannelID string
	Node      string
	// Acknowledged says the connection is known to be closed with reason
	// api_disconnect: in serve, once its tcpclean was emitted; in the
	// scale-out topology, once the store shows it, within a bounded wait.
	Acknowledged bool
	// Detail explains an unacknowledged kick.
	Detail string
	// Channels lists every channel a command went to, when more than one.
	Channels []KickedChannel
}

// KickedChannel is one channel a kick command went to.
type KickedChannel struct {
	ChannelID    string `json:"channelId"`
	Node         string `json:"node"`
	Acknowledged bool   `json:"acknowledged"`
}

// kickResponse is the body of a 202 to DELETE /clients/{clientId}/connection.
type kickResponse struct {
	ClientID     string `json:"clientId"`
	ChannelID    string `json:"channelId"`
	Node         string `json:"node"`
	Acknowledged bool   `json:"acknowledged"`
	// DiscardedWill says the client's will was dropped, not published.
	DiscardedWill bool            `json:"discardedWill"`
	Detail        string          `json:"detail,omitempty"`
	Channels      []KickedChannel `json:"channels,omitempty"`
}

// handleKick answers DELETE /clients/{clientId}/connection?discardWill=:
// the broker node holding the connection closes it with reason
// api_disconnect, and 202 names the channel and node. In presenced serve
// the broker is in this process and acknowledged is always true (the
// tcpclean has been emitted). In presenced api the client's open channels
// come from the store, a kick command goes to every broker through
// RocketMQ's control topic (only the named node acts, only on that
// channel), and the answer waits a bounded time (--rocketmq-kick-wait) for
// the store to show the channel closed: acknowledged is false, with a
// detail, when the wait ends first — the node may be down, or the command
// still on its way. 404 when the client has no open connection; 501 where
// this process can reach no broker (presenced api without
// --rocketmq-namesrv, presenced consumer).
func (s *Server) handleKick(w http.ResponseWriter, r *http.Request) {
	clientID, err := s.clientIDParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	discardWill := false
	if v := r.URL.Query().Get("discardWill"); v != "" {
		if discardWill, err = strconv.ParseBool(v); err != nil {
			s.writeError(w, r, presence.FieldErrorf("discardWill", "must be true or false"))
			return
		}
	}
	if s.deps.Kicker == nil {
		s.writeProblem(w, Problem{Status: http.StatusNotImplemented, Instance: r.URL.Path,
			Detail: "this process holds no MQTT broker and has no RocketMQ control topic to reach one: start presenced api with --rocketmq-namesrv, or kick through presenced serve"})
		return
	}
	res, ok, err := s.deps.Kicker.Kick(r.Context(), clientID, discardWill)
	switch {
	case err != nil:
		// The client hears what failed, the log (writeError) why.
		s.writeError(w, r, fmt.Errorf("%w: %w", presence.Errorf(presence.EUNAVAILABLE, "closing the connection of %s did not finish", clientID), err))
	case !ok:
		s.writeProblem(w, Problem{Status: http.StatusNotFound, Instance: r.URL.Path,
			Detail: "client " + strconv.Quote(clientID) + " is not connected (no open connection)"})
	default:
		writeJSON(w, http.StatusAccepted, kickResponse{ClientID: clientID, ChannelID: res.ChannelID, Node: res.Node,
			Acknowledged: res.Acknowledged, DiscardedWill: discardWill, Detail: res.Detail, Channels: res.Channels})
	}
}
