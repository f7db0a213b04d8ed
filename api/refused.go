package api

import (
	"context"
	"net/http"

	"github.com/presenced/presenced/presence"
)

// RefusedReader reads the CONNECTs the broker refused for a client.
type RefusedReader interface {
	RefusedConnects(ctx context.Context, clientID string, limit int) ([]presence.RefusedConnect, error)
}

// refusedResponse is the body of GET /clients/{clientId}/refused.
type refusedResponse struct {
	ClientID string                    `json:"clientId"`
	Items    []presence.RefusedConnect `json:"items"`
}

// handleRefused answers GET /clients/{clientId}/refused?limit=: the
// client's refused CONNECTs, newest first — why it could not get in — as
// recorded by presenced serve's broker (at most one per 10 s, the newest
// 100, under the channels' retention).
func (s *Server) handleRefused(w http.ResponseWriter, r *http.Request) {
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
	refused, err := s.deps.Refused.RefusedConnects(r.Context(), clientID, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, refusedResponse{ClientID: clientID, Items: refused})
}
