package api

import (
	"context"
	"net/http"
	"time"

	"github.com/presenced/presenced/presence"
)

// errViewNotCurrent answers requests served from the view while it does
// not follow the store (not loaded yet, or its feed was lost): a 503 is
// better than an answer that may be wrong.
var errViewNotCurrent = presence.Errorf(presence.EUNAVAILABLE, "the presence view is not current (loading, or the database is unreachable); retry shortly")

// viewCurrent reports whether the view is current, and answers the request
// with errViewNotCurrent (503) when it is not: every answer read from the
// view asks this first, after checking its parameters.
func (s *Server) viewCurrent(w http.ResponseWriter, r *http.Request) bool {
	if s.deps.Live.View.Current() {
		return true
	}
	s.writeError(w, r, errViewNotCurrent)
	return false
}

// handleHealthz is liveness: the process serves HTTP.
func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// handleReadyz is readiness: the database is reachable and migrated, and
// the view is loaded and follows the store, so answers are truthful. The
// database is asked first: when it is down, its reason (restarting,
// waiting for disk space) says more than the view's.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.deps.Readiness.Ready(ctx); err != nil {
		s.log.Warn("not ready", "err", err)
		// The domain message says why (restarting, waiting for disk
		// space, schema version) and is safe for clients; anything
		// else gets the general reason.
		why := "the database is unreachable or not migrated"
		if presence.ErrorCode(err) != presence.EINTERNAL {
			why = presence.ErrorMessage(err)
		}
		s.writeError(w, r, presence.Errorf(presence.EUNAVAILABLE, "not ready: %s", why))
		return
	}
	if !s.viewCurrent(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
