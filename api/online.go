package api

import (
	"net/http"

	"github.com/presenced/presenced/presence"
)

// handleOnline answers GET /clients/{clientId}/online. An unknown client is
// simply offline.
func (s *Server) handleOnline(w http.ResponseWriter, r *http.Request) {
	clientID, err := pathParam(r, "clientId")
	if err != nil {
		s.writeError(w, r, presence.FieldErrorf("clientId", "is not a valid escaped path segment"))
		return
	}
	if err := presence.ValidateClientID(clientID); err != nil {
		s.writeError(w, r, err)
		return
	}
	status, err := s.deps.Status.Status(r.Context(), clientID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, status)
}
