package api

import (
	"net/http"

	"github.com/presenced/presenced/presence"
)

// channelsResponse is the body of GET /clients/{clientId}/channels.
type channelsResponse struct {
	ClientID string             `json:"clientId"`
	Items    []presence.Channel `json:"items"`
}

// handleChannels answers GET /clients/{clientId}/channels?limit=: every
// connection of the client with its evidence, open ones first, then the
// most recently active; at most limit (default 100, up to 1000). A client
// the store never heard of has no channels (200, empty).
func (s *Server) handleChannels(w http.ResponseWriter, r *http.Request) {
	clientID, err := s.clientIDParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	limit, err := queryLimit(r.URL.Query())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	channels, err := s.deps.Channels.Channels(r.Context(), clientID, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, channelsResponse{ClientID: clientID, Items: channels})
}
