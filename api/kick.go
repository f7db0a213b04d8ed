package api

import (
	"context"
	"net/http"
	"strconv"

	"github.com/presenced/presenced/presence"
)

// Kicker closes a client's connection on the broker this process holds
// (see mqttbroker.Server.Kick).
type Kicker interface {
	Kick(ctx context.Context, clientID string, discardWill bool) (channelID string, ok bool, err error)
}

// kickResponse is the body of a 202 to DELETE /clients/{clientId}/connection.
type kickResponse struct {
	ClientID  string `json:"clientId"`
	ChannelID string `json:"channelId"`
	// DiscardedWill says the client's will was dropped, not published.
	DiscardedWill bool `json:"discardedWill"`
}

// handleKick answers DELETE /clients/{clientId}/connection?discardWill=:
// the broker closes the client's connection with reason api_disconnect,
// and 202 names the channel — its tcpclean has been emitted and reaches
// the store as every event does. 404 when the client is not connected to
// this process's broker; 501 where this process holds no broker (presenced
// api and consumer: the command would have to reach the broker nodes
// through RocketMQ, which is not built).
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
			Detail: "this process holds no MQTT broker: kick through presenced serve, or on the broker node that holds the client (scale-out through RocketMQ is not built yet)"})
		return
	}
	channelID, ok, err := s.deps.Kicker.Kick(r.Context(), clientID, discardWill)
	switch {
	case err != nil:
		s.writeError(w, r, presence.Errorf(presence.EUNAVAILABLE, "closing the connection of %s did not finish in time: %v", clientID, err))
	case !ok:
		s.writeProblem(w, Problem{Status: http.StatusNotFound, Instance: r.URL.Path,
			Detail: "client " + strconv.Quote(clientID) + " is not connected to this broker"})
	default:
		writeJSON(w, http.StatusAccepted, kickResponse{ClientID: clientID, ChannelID: channelID, DiscardedWill: discardWill})
	}
}
