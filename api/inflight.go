package api

import (
	"net/http"

	"github.com/presenced/presenced/presence"
)

// limitInFlight sheds load: beyond MaxInFlight requests at once, new ones
// get 429 with Retry-After at once instead of queueing behind the others
// (and behind the database) until every caller times out.
func (s *Server) limitInFlight(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.inFlight <- struct{}{}:
		default:
			s.writeError(w, r, presence.Errorf(presence.EOVERLOADED, "too many requests in flight (%d); retry shortly", cap(s.inFlight)))
			return
		}
		defer func() { <-s.inFlight }()
		next.ServeHTTP(w, r)
	})
}
