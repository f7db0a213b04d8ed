// Package api serves presence over HTTP: online lookups answered from the
// in-memory view, lists and stats, channel and event history from the
// store, event ingestion, a Server-Sent Events stream of presence changes,
// Prometheus metrics and an OpenAPI description, with errors as RFC 9457
// problem+json. It declares the small interfaces it needs from the store;
// cmd/presenced wires the store in.
package api

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/presence"
)

// ChannelReader lists a client's channels, open ones first.
type ChannelReader interface {
	Channels(ctx context.Context, clientID string, limit int) ([]presence.Channel, error)
}

// NodeLister lists the broker nodes the store knows, with their epochs,
// liveness and open channels.
type NodeLister interface {
	Nodes(ctx context.Context) ([]presence.Node, error)
}

// HistoryReader reads a page of a client's stored events.
type HistoryReader interface {
	History(ctx context.Context, q presence.HistoryQuery) ([]presence.StoredEvent, error)
}

// EventCounter counts the stored events of the clients with an id prefix.
type EventCounter interface {
	CountEvents(ctx context.Context, prefix string) (int64, error)
}

// ClientDirectory answers from the store for the clients the view does
// not hold: offline clients beyond its bound (see presence.View).
type ClientDirectory interface {
	// LastEventTimes returns each client's newest event time in ms (0:
	// none), in the order of clientIDs.
	LastEventTimes(ctx context.Context, clientIDs []string) ([]int64, error)
	// ClientPage lists up to limit clients after after with prefix, in id
	// order.
	ClientPage(ctx context.Context, prefix, after string, limit int) ([]presence.ClientActivity, error)
	// CountClients counts the clients with prefix.
	CountClients(ctx context.Context, prefix string) (int64, error)
}

// EventIngester stores valid events idempotently, all or none, and returns
// those that were new. It refuses, with an error of code "conflict" (409),
// events that would open or close channels of a broker node that reports
// itself: ingested events never overrule a broker.
type EventIngester interface {
	Ingest(ctx context.Context, events []presence.Event) ([]presence.StoredEvent, error)
}

// SessionInspector reads what a connected client's session holds on the
// broker this process runs (see mqttbroker.Server.SessionCounts).
type SessionInspector interface {
	SessionCounts(clientID string) (channelID string, counts presence.SessionCounts, ok bool)
}

// ReadinessChecker reports whether the database is reachable and migrated.
type ReadinessChecker interface {
	Ready(ctx context.Context) error
}

// Deps are the parts the API reads from and writes to.
type Deps struct {
	// Live is the view and the change stream, fed from the store's feed.
	Live     *Live
	Channels ChannelReader
	Nodes    NodeLister
	History  HistoryReader
	Counter  EventCounter
	Clients  ClientDirectory
	Spans    SpanReader
	Refused  RefusedReader
	// Kicker closes a client's connection; nil where this process holds
	// no broker (DELETE /clients/{id}/connection then answers 501).
	Kicker Kicker
	// Sessions reads the live counts of a connected client's session; nil
	// where this process holds no broker.
	Sessions  SessionInspector
	Ingester  EventIngester
	Readiness ReadinessChecker
}

// Caps of the API, documented in README.md and openapi.json.
const (
	MaxBatchClientIDs  = 1000 // ids in one POST /clients/online
	DefaultPageLimit   = 100  // page size when limit is not given
	MaxPageLimit       = 1000 // largest page of /clients, /channels, /events
	MaxEventsPerPost   = 1000 // events in one POST /events
	MaxStreamClientIDs = 100  // clientId filters of one /stream
	MaxStreamPrefixes  = 100  // prefix filters of one /stream (each change is matched against every one)
	// MaxHistoryRange bounds the time range of one /events query.
	MaxHistoryRange = 31 * 24 * time.Hour
)

// Config tunes the HTTP layer; zero values take the defaults.
type Config struct {
	// RequestTimeout bounds the work of one request (not of /stream).
	RequestTimeout time.Duration // default 10s
	// MaxBodyBytes bounds a request body; larger ones get 413.
	MaxBodyBytes int64 // default 4 MiB
	// MaxInFlight bounds requests served at once (streams not counted);
	// more get 429.
	MaxInFlight int // default 4096
	// ReadTokens and IngestTokens are the accepted bearer tokens. With none
	// of either, the API is open.
	ReadTokens, IngestTokens []string
	// AdminTokens are accepted for DELETE /clients/{id}/connection.
	AdminTokens []string
	// HostAllowed, when set, decides which host names (the Host header,
	// without its port) are served; a request for another is refused with
	// 403. presenced sets it while the API is open on loopback: a web page
	// whose name was rebound to 127.0.0.1 (DNS rebinding) would otherwise
	// reach the open API from a browser on this machine as its own site.
	HostAllowed func(host string) bool
	// Heartbeat is the interval of SSE heartbeat comments.
	Heartbeat time.Duration // default 15s
	// StreamWriteTimeout bounds every write of a /stream response (a
	// batch of changes, a heartbeat): a client that does not take it in
	// time is dropped and its connection closed.
	StreamWriteTimeout time.Duration // default 10s
	// MaxStreams bounds concurrent /stream subscribers; more get 429.
	MaxStreams int // default 1000
	// StreamBuffer is how many changes may wait for one slow subscriber
	// before it is disconnected (it can resume with Last-Event-ID).
	StreamBuffer int // default 1024
	// StatsCacheTTL is how long the events count of /stats is reused.
	StatsCacheTTL time.Duration // default 10s
	// Registry receives the API's metrics and is served at /metrics; nil
	// makes a private one.
	Registry *prometheus.Registry
	Logger   *slog.Logger
}

func (c *Config) setDefaults() {
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 4 << 20
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 4096
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 15 * time.Second
	}
	if c.StreamWriteTimeout <= 0 {
		c.StreamWriteTimeout = 10 * time.Second
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = 1000
	}
	if c.StreamBuffer <= 0 {
		c.StreamBuffer = 1024
	}
	if c.StatsCacheTTL <= 0 {
		c.StatsCacheTTL = 10 * time.Second
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Server is the HTTP handler of presenced.
type Server struct {
	deps     Deps
	cfg      Config
	log      *slog.Logger
	router   http.Handler
	auth     authenticator
	inFlight chan struct{}
	metrics  *httpMetrics
	counts   *countCache

	metricsHandler http.Handler

	// readScope and onlineOK serve the lookup's fast path (fastpath.go).
	readScope scopeCheck
	onlineOK  onlineObserver

	// crossOrigin refuses what a browser sends for a page of another
	// site: POST /events, a kick (see ServeHTTP).
	crossOrigin *http.CrossOriginProtection
}

// New returns the API handler. It registers its metrics on cfg.Registry.
func New(cfg Config, deps Deps) *Server {
	cfg.setDefaults()
	s := &Server{
		deps:     deps,
		cfg:      cfg,
		log:      cfg.Logger,
		auth:     newAuthenticator(cfg.ReadTokens, cfg.IngestTokens, cfg.AdminTokens),
		inFlight: make(chan struct{}, cfg.MaxInFlight),
		counts:   newCountCache(cfg.StatsCacheTTL, time.Now),

		crossOrigin: http.NewCrossOriginProtection(),
	}
	s.metrics = newHTTPMetrics(cfg.Registry)
	s.metricsHandler = newMetricsHandler(s)
	deps.Live.register(cfg.Registry)
	deps.Live.Stream.configure(cfg.MaxStreams, cfg.StreamBuffer)
	s.readScope = s.auth.check(scopeRead)
	s.router = s.routes()
	return s
}

// ServeHTTP answers GET /clients/{clientId}/online itself (fastpath.go) and
// hands every other request to the router, once it is sure the request is
// not a web page's that a browser sends on its behalf: one for a host name
// HostAllowed refuses, or a state-changing request from a page of another
// origin (a cross-site form or fetch needs no CORS to POST text/plain; a
// bearer token is never attached by a browser, but an open API needs
// none).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.cfg.HostAllowed != nil && !s.cfg.HostAllowed(hostName(r.Host)) {
		s.writeProblem(w, Problem{Status: http.StatusForbidden, Instance: r.URL.Path,
			Detail: "this API is open only to clients of this machine, and " + strconv.Quote(r.Host) + " is not a loopback host name; use 127.0.0.1 or localhost"})
		return
	}
	if err := s.crossOrigin.Check(r); err != nil {
		s.writeProblem(w, Problem{Status: http.StatusForbidden, Instance: r.URL.Path,
			Detail: "cross-origin request refused: a web page of another site may not send " + r.Method + " requests here"})
		return
	}
	if r.Method == http.MethodGet {
		if id, ok := onlineClientID(r.URL); ok {
			s.serveOnline(w, r, id)
			return
		}
	}
	s.router.ServeHTTP(w, r)
}

// CloseStreams ends every /stream response, so that http.Server.Shutdown,
// which waits for handlers, does not wait for streams that never end.
// Register it with http.Server.RegisterOnShutdown.
func (s *Server) CloseStreams() { s.deps.Live.Stream.Close() }

// hostName is the host of a Host header, without port or IPv6 brackets.
func hostName(hostport string) string {
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		return host
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
}
