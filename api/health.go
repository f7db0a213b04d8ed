package api

import (
	"context"
	"net/http"
	"time"

	"github.com/presenced/presenced/presence"
)

// handleHealthz is liveness: the process serves HTTP.
func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// handleReadyz is readiness: the database is reachable and migrated, so
// answers are truthful.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.deps.Readiness.Ready(ctx); err != nil {
		s.log.Warn("not ready", "err", err)
		s.writeError(w, r, presence.Errorf(presence.EUNAVAILABLE, "not ready: the database is unreachable or not migrated"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
