package api

import (
	"net/http"

	"github.com/go-chi/chi/v5"
)

// routes is the one place that lists every route of the API. openapi.json
// describes exactly these (TestOpenAPIMatchesRoutes walks the router).
//
// /healthz, /readyz, /metrics, /openapi.json and the /ui/ dashboard files
// are never authenticated: probes and scrapers carry no tokens, and none
// of them reveals a client.
func (s *Server) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(s.recoverer, s.instrument)
	r.NotFound(s.notFound)
	r.MethodNotAllowed(s.methodNotAllowed)

	r.Get("/healthz", s.handleHealthz)
	r.Get("/readyz", s.handleReadyz)
	r.Get("/metrics", s.handleMetrics)
	r.Get("/openapi.json", s.handleOpenAPI)
	// The dashboard (api/ui.go) is static and holds no data, so it loads
	// without a token; the calls it makes carry the token it asks for.
	r.Group(func(r chi.Router) {
		r.Use(s.limitInFlight, s.deadlines)
		r.Get("/ui", s.redirectToUI)
		r.Get("/ui/", s.handleUIFile("index.html"))
		r.Get("/ui/app.js", s.handleUIFile("app.js"))
		r.Get("/ui/app.css", s.handleUIFile("app.css"))
	})

	r.Group(func(r chi.Router) {
		r.Use(s.authenticate(scopeRead))
		// A stream lives for hours: no request timeout, no in-flight slot
		// (streams have their own cap).
		r.Get("/stream", s.handleStream)
		r.Group(func(r chi.Router) {
			r.Use(s.limitInFlight, s.deadlines)
			// Answered from the in-memory view.
			r.Get(onlineRoute, s.handleOnline)
			r.With(s.limitBody).Post("/clients/online", s.handleOnlineBatch)
			r.Get("/clients", s.handleListClients)
			// Answered by the store, within the request timeout.
			r.Group(func(r chi.Router) {
				r.Use(s.timeout)
				r.Get("/clients/{clientId}/channels", s.handleChannels)
				r.Get("/clients/{clientId}/events", s.handleEvents)
				r.Get("/clients/{clientId}/presence", s.handlePresence)
				r.Get("/clients/{clientId}/refused", s.handleRefused)
				r.Get("/stats", s.handleStats)
				r.Get("/nodes", s.handleNodes)
			})
		})
	})
	r.Group(func(r chi.Router) {
		r.Use(s.authenticate(scopeIngest), s.limitInFlight, s.deadlines, s.timeout, s.limitBody)
		r.Post("/events", s.handleIngest)
	})
	r.Group(func(r chi.Router) {
		r.Use(s.authenticate(scopeAdmin), s.limitInFlight, s.deadlines, s.timeout)
		r.Delete("/clients/{clientId}/connection", s.handleKick)
	})
	return r
}
