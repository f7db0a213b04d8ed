package api

import (
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// httpMetrics are the API's own metrics; the broker's, the consumer's and
// the runtime's are registered on the same registry by cmd/presenced.
type httpMetrics struct {
	duration  *prometheus.HistogramVec
	observers sync.Map // observerKey → prometheus.Observer (see observer)
	inFlight  prometheus.Gauge
	ingested  *prometheus.CounterVec
}

// latencyBuckets reach down to 50µs: lookups answered from the view take
// tens of microseconds, history queries milliseconds.
var latencyBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "presenced_http_request_duration_seconds",
			Help:    "Latency of HTTP requests by method, route pattern and status code (/stream excluded).",
			Buckets: latencyBuckets,
		}, []string{"method", "route", "code"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "presenced_http_requests_in_flight",
			Help: "HTTP requests being served, streams included.",
		}),
		ingested: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presenced_http_ingested_events_total",
			Help: "Events received by POST /events: applied (new) and duplicate count events; refused counts the events of batches refused (409) for touching a broker node that reports itself; rejected counts requests refused as invalid (nothing stored).",
		}, []string{"result"}),
	}
	reg.MustRegister(m.duration, m.inFlight, m.ingested)
	return m
}

// handleMetrics serves the registry in the Prometheus text format.
func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	s.metricsHandler.ServeHTTP(w, r)
}

func newMetricsHandler(s *Server) http.Handler {
	return promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{
		ErrorLog:      promLogger{s},
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// promLogger sends promhttp's errors to the API's logger.
type promLogger struct{ s *Server }

func (l promLogger) Println(v ...any) { l.s.log.Error("serve metrics", "err", v) }
