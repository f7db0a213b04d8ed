package api

import (
	"context"
	"net/http"
	"time"
)

// timeout bounds the work of a request: its context ends after
// RequestTimeout, so store queries give up (and the request gets 503), and
// the connection's read and write deadlines end a client that sends its
// body or reads the answer too slowly. The server itself has no
// ReadTimeout or WriteTimeout, because those would also end /stream.
func (s *Server) timeout(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		defer cancel()
		rc := http.NewResponseController(w)
		deadline := time.Now().Add(s.cfg.RequestTimeout + 5*time.Second)
		_ = rc.SetReadDeadline(deadline)
		_ = rc.SetWriteDeadline(deadline)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
