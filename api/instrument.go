package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// instrument observes the latency of every request by route pattern (the
// chi pattern such as /clients/{clientId}/online, never the raw path),
// method (the standard ones, others as "other") and status code, so the
// label set stays small whatever clients ask.
// /stream is left out: its duration is the life of a subscription, counted
// by the stream's own metrics.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		s.metrics.inFlight.Inc()
		defer s.metrics.inFlight.Dec()
		next.ServeHTTP(rec, r)
		route := "unmatched"
		if rctx := chi.RouteContext(r.Context()); rctx != nil && rctx.RoutePattern() != "" {
			route = rctx.RoutePattern()
		}
		if route == "/stream" {
			return
		}
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		s.metrics.observer(methodLabel(r.Method), route, rec.status).Observe(time.Since(start).Seconds())
	})
}

// observerKey names one series of the request duration histogram.
type observerKey struct {
	method, route string
	status        int
}

// observer returns the duration series of one method, route and status,
// cached: WithLabelValues hashes the labels and formats the status on every
// call, a measurable part of a lookup answered from memory. The cache holds
// at most what the histogram itself does (bounded methods, the routes, the
// status codes used).
func (m *httpMetrics) observer(method, route string, status int) prometheus.Observer {
	key := observerKey{method, route, status}
	if o, ok := m.observers.Load(key); ok {
		return o.(prometheus.Observer)
	}
	o := m.duration.WithLabelValues(method, route, strconv.Itoa(status))
	m.observers.Store(key, o)
	return o
}

// methodLabel keeps the method label bounded: a client may send any token
// as a method, and each would become a new time series.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return method
	}
	return "other"
}

// statusRecorder remembers the status code. It passes Flush through (for
// SSE) and unwraps for http.ResponseController.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusRecorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
