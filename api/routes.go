package api

import (
	"net/http"

	"github.com/go-chi/chi/v5"
)

// routes is the one place that lists every route of the API.
func (s *Server) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(s.recoverer)
	r.NotFound(s.notFound)
	r.MethodNotAllowed(s.methodNotAllowed)

	r.Get("/healthz", s.handleHealthz)
	r.Get("/readyz", s.handleReadyz)
	r.Get("/clients/{clientId}/online", s.handleOnline)
	return r
}
