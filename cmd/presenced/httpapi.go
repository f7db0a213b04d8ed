package main

import (
	"context"
	"log/slog"
	"net/http"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/presenced/presenced/api"
	"github.com/presenced/presenced/mqttbroker"
	"github.com/presenced/presenced/presence"
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
// runtime and process collectors and presenced_build_info; callers add
// the broker's and the consumer's. The caller has checked the API's
// access (apiConfig.checkAccess) before listening. kicker closes clients'
// connections for DELETE /clients/{id}/connection (nil: none can be
// reached); sessions reads live session counts where the process holds the
// broker (serve), nil elsewhere.
func newHTTPAPI(cfg config, db *database, kicker api.Kicker, sessions api.SessionInspector, log *slog.Logger) *httpAPI {
	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), newBuildInfo(version))
	live := api.NewLive(cfg.API.OfflineCache, cfg.API.StreamRing)
	a := &httpAPI{registry: registry}
	a.follower = db.store.NewFollower(live, pgstore.FollowOptions{
		PollInterval: cfg.API.FeedPoll,
		Logger:       log.With("component", "feed"),
	})
	a.api = api.New(api.Config{
		RequestTimeout:     cfg.API.RequestTimeout,
		MaxBodyBytes:       int64(cfg.API.MaxBodyBytes),
		MaxInFlight:        cfg.API.MaxInFlight,
		ReadTokens:         cfg.API.readTokens(),
		IngestTokens:       cfg.API.ingestTokens(),
		AdminTokens:        cfg.API.adminTokens(),
		HostAllowed:        cfg.API.hostAllowed(),
		Heartbeat:          cfg.API.Heartbeat,
		StreamWriteTimeout: cfg.API.StreamWriteTimeout,
		MaxStreams:         cfg.API.MaxStreams,
		Registry:           registry,
		Logger:             log.With("component", "api"),
	}, api.Deps{Live: live, Channels: db.store, Nodes: db.store, History: db.store, Counter: db.store, Clients: db.store, Spans: db.store, Refused: db.store,
		Ingester: apiIngester{db.store}, Readiness: db, Kicker: kicker, Sessions: sessions})
	a.server = &http.Server{
		Handler: a.api,
		// No ReadTimeout or WriteTimeout: they would end /stream. The API
		// sets per-request deadlines itself (api/timeout.go).
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHTTPHeaderBytes,
		ErrorLog:          httpErrorLog(log),
	}
	// Shutdown waits for handlers; streams end only when told to.
	a.server.RegisterOnShutdown(a.api.CloseStreams)
	if cfg.API.open() {
		log.Warn("the HTTP API is open: no --api-read-tokens(-file) or --api-ingest-tokens(-file) configured",
			"http_addr", cfg.HTTPAddr, "loopback", isLoopback(cfg.HTTPAddr))
	}
	return a
}

// apiIngester is the API's EventIngester: POST /events goes through the
// store's Ingest, which refuses events of broker nodes that report
// themselves and stores the rest with source "api".
type apiIngester struct{ store *pgstore.Store }

func (i apiIngester) Ingest(ctx context.Context, events []presence.Event) ([]presence.StoredEvent, error) {
	result, err := i.store.Ingest(ctx, events)
	return result.Applied, err
}

// newBuildInfo is presenced_build_info: always 1, its labels say which
// presenced (main.version) and which Go runtime a scrape came from.
func newBuildInfo(version string) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "presenced_build_info",
		Help:        "Always 1; the labels are the presenced version and the Go version it was built with.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	g.Set(1)
	return g
}

// runFollower runs the follower until ctx ends.
func (a *httpAPI) runFollower(ctx context.Context) error { return a.follower.Run(ctx) }

// lateBroker is the serve mode's broker as the API sees it — its Kicker
// and its SessionInspector: the API is built before the broker, which is
// set once it exists. The kick is direct, so it is acknowledged once the
// connection's tcpclean has been emitted.
type lateBroker struct {
	node   string
	broker atomic.Pointer[mqttbroker.Server]
}

func (k *lateBroker) Kick(ctx context.Context, clientID string, discardWill bool) (api.KickResult, bool, error) {
	b := k.broker.Load()
	if b == nil {
		return api.KickResult{}, false, nil // not started yet: it holds no client
	}
	channelID, ok, err := b.Kick(ctx, clientID, discardWill)
	return api.KickResult{ChannelID: channelID, Node: k.node, Acknowledged: ok && err == nil}, ok, err
}

// SessionCounts reads a connected client's session on the serve mode's
// broker.
func (k *lateBroker) SessionCounts(clientID string) (string, presence.SessionCounts, bool) {
	b := k.broker.Load()
	if b == nil {
		return "", presence.SessionCounts{}, false
	}
	return b.SessionCounts(clientID)
}
