package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/presenced/presenced/presence"
)

// opsServer is the small HTTP endpoint of the modes without the API
// ("presenced broker", "presenced consumer"): liveness, readiness and
// Prometheus metrics, so they can be run and scraped like the rest.
func opsServer(ready func(ctx context.Context) error, reg *prometheus.Registry, log *slog.Logger) *http.Server {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), newBuildInfo(version))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeOpsJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := ready(ctx); err != nil {
			log.Warn("not ready", "err", err)
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusServiceUnavailable)
			detail := "not ready"
			if presence.ErrorCode(err) != presence.EINTERNAL {
				detail = "not ready: " + presence.ErrorMessage(err) // client-safe: says why
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "title": "Service Unavailable", "status": 503, "detail": detail})
			return
		}
		writeOpsJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		// Probes and scrapers are quick; a connection that idles or
		// dawdles holds a descriptor for nothing.
		ReadTimeout:    10 * time.Second,
		WriteTimeout:   30 * time.Second,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: maxHTTPHeaderBytes,
		ErrorLog:       httpErrorLog(log),
	}
}

func writeOpsJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// maxHTTPHeaderBytes bounds a request's header on every HTTP listener
// (net/http's default is 1 MiB): a bearer token and a few headers fit in a
// fraction of it; larger headers get 431.
const maxHTTPHeaderBytes = 64 << 10
