package main

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/presenced/presenced/api"
	"github.com/presenced/presenced/presence/pgstore"
)

// httpAPI is the HTTP API of one process: the server, the live view it
// answers from, and the follower that feeds the view from the store's
// change feed — the one path by which the view learns anything, in "serve"
// and "api" alike.
type httpAPI struct {
	api      *api.Server
	server   *http.Server
	follower *pgstore.Follower
	registry *prometheus.Registry
}

// newHTTPAPI assembles the API on db. Its registry already holds the Go
// runtime and process collectors; callers add the broker's and the
// consumer's.
func newHTTPAPI(cfg config, db *database, log *slog.Logger) *httpAPI {
	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	live := api.NewLive(cfg.API.StreamRing)
	a := &httpAPI{registry: registry}
	a.follower = db.store.NewFollower(live, pgstore.FollowOptions{
		PollInterval: cfg.API.FeedPoll,
		Logger:       log.With("component", "feed"),
	})
	a.api = api.New(api.Config{
		RequestTimeout: cfg.API.RequestTimeout,
		MaxBodyBytes:   int64(cfg.API.MaxBodyBytes),
		MaxInFlight:    cfg.API.MaxInFlight,
		ReadTokens:     tokens(cfg.API.ReadTokens),
		IngestTokens:   tokens(cfg.API.IngestTokens),
		Heartbeat:      cfg.API.Heartbeat,
		MaxStreams:     cfg.API.MaxStreams,
		Registry:       registry,
		Logger:         log.With("component", "api"),
	}, api.Deps{Live: live, Channels: db.store, Nodes: db.store, History: db.store, Counter: db.store, Ingester: db, Readiness: db})
	a.server = &http.Server{
		Handler: a.api,
		// No ReadTimeout or WriteTimeout: they would end /stream. The API
		// sets per-request deadlines itself (api/timeout.go).
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// Shutdown waits for handlers; streams end only when told to.
	a.server.RegisterOnShutdown(a.api.CloseStreams)
	if cfg.API.ReadTokens == "" && cfg.API.IngestTokens == "" {
		log.Warn("the HTTP API is open: no --api-read-tokens or --api-ingest-tokens configured")
	}
	return a
}

// runFollower runs the follower until ctx ends.
func (a *httpAPI) runFollower(ctx context.Context) error { return a.follower.Run(ctx) }
