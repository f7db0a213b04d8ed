package api

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/presence"
)

// onlineRoute is the pattern of the lookup route, as the router, the
// request-duration histogram and Request.Pattern name it.
const onlineRoute = "/clients/{clientId}/online"

// The lookup is the hot path of the API: callers ask on every request of
// theirs. ServeHTTP answers GET /clients/{clientId}/online itself, ahead of
// the router, with the route's middlewares flattened into serveOnline in
// the router's order (recoverer, instrument, authenticate read, in-flight
// limit, deadlines). The router would cost four allocations per request
// (its route context, the request copy carrying it, the path values) and
// the walk of its tree; each middleware its closure and a deferred call.
// Every other request, and every path this one does not match exactly, goes
// through the router as before (TestOnlineFastPathMatchesRouter).

// onlineClientID returns the raw {clientId} of a path the router would
// match to the lookup route: the one non-empty segment between "/clients/"
// and "/online", matched, as the router does, on the escaped path when the
// request has one.
func onlineClientID(u *url.URL) (string, bool) {
	path := u.RawPath
	if path == "" {
		path = u.Path
	}
	rest, ok := strings.CutPrefix(path, "/clients/")
	if !ok {
		return "", false
	}
	id, ok := strings.CutSuffix(rest, "/online")
	if !ok || id == "" || strings.IndexByte(id, '/') >= 0 {
		return "", false
	}
	return id, true
}

// recorderPool reuses the status recorders of lookups: serveOnline owns its
// recorder until it returns (a lookup hands it to nothing that outlives the
// request).
var recorderPool = sync.Pool{New: func() any { return new(statusRecorder) }}

// bodyPool reuses the buffers lookup answers are encoded into; net/http
// copies a body into its own buffer within Write.
var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// onlineObserver caches the duration series of 200 answers of the lookup
// route (the others go through httpMetrics.observer). It is made on first
// use, as observer makes every series, so /metrics shows none before the
// first lookup.
type onlineObserver struct {
	p atomic.Pointer[prometheus.Observer]
}

func (o *onlineObserver) get(m *httpMetrics) prometheus.Observer {
	if p := o.p.Load(); p != nil {
		return *p
	}
	obs := m.observer(http.MethodGet, onlineRoute, http.StatusOK)
	o.p.Store(&obs)
	return obs
}

// serveOnline is the lookup route's middleware chain and handler in one
// function; each step keeps the effect of its middleware, in the router's
// order. w is the server's writer, rec the recording one of instrument.
func (s *Server) serveOnline(w http.ResponseWriter, r *http.Request, rawID string) {
	var inInstrument, holdsSlot bool
	// recoverer: a panic is a logged 500 problem, written to w (the
	// recoverer is outside instrument), after instrument's deferred gauge
	// decrement and limitInFlight's deferred release, and not observed.
	defer func() {
		if v := recover(); v != nil {
			if holdsSlot {
				<-s.inFlight
			}
			if inInstrument {
				s.metrics.inFlight.Dec()
			}
			s.recovered(w, r, v)
		}
	}()
	r.Pattern = onlineRoute
	// instrument
	start := time.Now()
	rec := recorderPool.Get().(*statusRecorder)
	*rec = statusRecorder{ResponseWriter: w}
	s.metrics.inFlight.Inc()
	inInstrument = true
	// authenticate(scopeRead)
	if s.readScope.allow(s, rec, r) {
		// limitInFlight
		select {
		case s.inFlight <- struct{}{}:
			holdsSlot = true
		default:
			s.writeError(rec, r, presence.Errorf(presence.EOVERLOADED, "too many requests in flight (%d); retry shortly", cap(s.inFlight)))
		}
	}
	if holdsSlot {
		// deadlines
		if d := connDeadlines(w); d != nil {
			deadline := start.Add(s.cfg.RequestTimeout + 5*time.Second)
			if r.Body != nil && r.Body != http.NoBody {
				_ = d.SetReadDeadline(deadline)
			}
			_ = d.SetWriteDeadline(deadline)
		}
		s.serveOnlineHandler(rec, r, rawID)
		holdsSlot = false
		<-s.inFlight
	}
	inInstrument = false
	s.metrics.inFlight.Dec()
	status := rec.status
	*rec = statusRecorder{}
	recorderPool.Put(rec)
	var o prometheus.Observer
	if status == 0 || status == http.StatusOK {
		o = s.onlineOK.get(s.metrics)
	} else {
		o = s.metrics.observer(http.MethodGet, onlineRoute, status)
	}
	o.Observe(time.Since(start).Seconds())
}

// serveOnlineHandler is handleOnline with the path parameter as the router
// would hand it over.
func (s *Server) serveOnlineHandler(w http.ResponseWriter, r *http.Request, rawID string) {
	clientID, err := clientIDOf(r, rawID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.online(w, r, clientID)
}
