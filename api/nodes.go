package api

import (
	"net/http"

	"github.com/presenced/presenced/presence"
)

// nodesResponse is the answer of GET /nodes.
type nodesResponse struct {
	Items []presence.Node `json:"items"`
}

// handleNodes answers GET /nodes: every broker node with its current
// epoch, state (alive, silent, lost, stopped), last heartbeat (the store's
// clock) and open channels — the evidence behind "unknown" answers.
func (s *Server) handleNodes(w http.ResponseWriter, r *http.Request) {
	nodes, err := s.deps.Nodes.Nodes(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if nodes == nil {
		nodes = []presence.Node{}
	}
	writeJSON(w, http.StatusOK, nodesResponse{Items: nodes})
}
