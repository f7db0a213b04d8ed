// Package api serves presence over HTTP: the online lookup, health and
// readiness, with errors as RFC 9457 problem+json. It declares the small
// interfaces it needs from the store; cmd/presenced wires the store in.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/presenced/presenced/presence"
)

// StatusReader answers "is this client online?".
type StatusReader interface {
	Status(ctx context.Context, clientID string) (presence.Status, error)
}

// ReadinessChecker reports whether the service can answer truthfully: the
// database reachable and migrated.
type ReadinessChecker interface {
	Ready(ctx context.Context) error
}

// Deps are the parts the API reads from.
type Deps struct {
	Status    StatusReader
	Readiness ReadinessChecker
}

// Config tunes the HTTP layer.
type Config struct {
	// RequestTimeout bounds the work of one request (not SSE streams).
	RequestTimeout time.Duration
	Logger         *slog.Logger
}

// Server is the HTTP handler of presenced.
type Server struct {
	deps   Deps
	cfg    Config
	log    *slog.Logger
	router http.Handler
}

// New returns the API handler.
func New(cfg Config, deps Deps) *Server {
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{deps: deps, cfg: cfg, log: cfg.Logger}
	s.router = s.routes()
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }
