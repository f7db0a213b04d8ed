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

// handleRefused answers GET /clients/{clientId}/refused?limit=: the
// client's refused CONNECTs, newest first — why it could not get in — as
// recorded by presenced serve's broker (at most one per 10 s, the newest
// 100, under the channels' retention).
func (s *Server) handleRefused(w http.ResponseWriter, r *http.Request) {
	writeClientItems(s, w, r, s.deps.Refused.RefusedConnects)
}
