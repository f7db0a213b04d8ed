package api

import (
	"net/http"
	"runtime/debug"

	"github.com/presenced/presenced/presence"
)

// recoverer turns a panic in a handler into a logged 500 problem instead of
// a dropped connection.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				s.recovered(w, r, v)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// recovered answers for a handler that panicked with v; http.ErrAbortHandler
// goes on up to net/http, which aborts the response.
func (s *Server) recovered(w http.ResponseWriter, r *http.Request, v any) {
	if v == http.ErrAbortHandler {
		panic(v)
	}
	s.log.Error("handler panicked", "method", r.Method, "path", loggedPath(r), "panic", v, "stack", string(debug.Stack()))
	s.writeError(w, r, presence.Errorf(presence.EINTERNAL, "internal error"))
}
