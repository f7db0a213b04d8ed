package main

import (
	"context"
	"io"
	stdlog "log"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/presenced/presenced/presence"
	"github.com/prometheus/client_golang/prometheus"
)

// Repeated log lines are limited per message text: at most logBurst lines
// of one message in each logWindow; the next line let through after a
// suppressed stretch carries "suppressed=N". One cause repeating — every
// refused CONNECT during a database outage, every failed retry — then
// costs a few lines per window instead of one per event (a 75-second
// outage once wrote 86 MB), and the counts say how much was left out.
const (
	logBurst  = 5
	logWindow = 10 * time.Second
	// logKeysMax bounds the limiter's memory: messages are constant
	// texts, so more keys than this means variable text slipped into a
	// message. Lines of further keys then share one budget (logOverflowKey)
	// rather than each getting its own, or the table being started afresh,
	// which would give every message a new budget.
	logKeysMax     = 4096
	logOverflowKey = "(more messages than the limiter tracks)"
)

// newLogger returns the process logger, and its limits, which the
// process's metrics show (presenced_log_lines_suppressed_total).
func newLogger(c config, w io.Writer) (*slog.Logger, *logLimits) {
	level, _ := parseLevel(c.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if c.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	limits := newLogLimits(time.Now)
	return slog.New(&limitedHandler{next: h, limits: limits}), limits
}

// logLimits counts lines per message text; it is shared by every handler
// derived from one logger (With adds attributes, not a new budget).
type logLimits struct {
	now        func() time.Time
	mu         sync.Mutex
	by         map[string]*logCount
	suppressed atomic.Int64 // lines left out, ever
}

var logSuppressedDesc = prometheus.NewDesc("presenced_log_lines_suppressed_total",
	"Log lines left out by the per-message limit (5 of one message in 10 s).", nil, nil)

func (l *logLimits) Describe(ch chan<- *prometheus.Desc) { ch <- logSuppressedDesc }

func (l *logLimits) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(logSuppressedDesc, prometheus.CounterValue, float64(l.suppressed.Load()))
}

type logCount struct {
	windowStart time.Time
	lines       int // let through in this window
	suppressed  int // left out since the last line let through
}

func newLogLimits(now func() time.Time) *logLimits {
	return &logLimits{now: now, by: make(map[string]*logCount)}
}

// allow reports whether a line of message key may be written now, and how
// many lines of it were suppressed since the last one written.
func (l *logLimits) allow(key string) (ok bool, suppressed int) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.by[key]
	if c == nil && len(l.by) >= logKeysMax-1 { // the last place is the overflow's
		key = logOverflowKey
		c = l.by[key]
	}
	if c == nil {
		c = &logCount{windowStart: now}
		l.by[key] = c
	}
	if now.Sub(c.windowStart) >= logWindow {
		c.windowStart, c.lines = now, 0
	}
	if c.lines >= logBurst {
		c.suppressed++
		l.suppressed.Add(1)
		return false, 0
	}
	c.lines++
	suppressed, c.suppressed = c.suppressed, 0
	return true, suppressed
}

// limitedHandler applies logLimits in front of the real handler.
type limitedHandler struct {
	next   slog.Handler
	limits *logLimits
}

func (h *limitedHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h *limitedHandler) Handle(ctx context.Context, r slog.Record) error {
	ok, suppressed := h.limits.allow(r.Level.String() + " " + r.Message)
	if !ok {
		return nil
	}
	if suppressed > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", suppressed))
	}
	return h.next.Handle(ctx, r)
}

func (h *limitedHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &limitedHandler{next: h.next.WithAttrs(attrs), limits: h.limits}
}

func (h *limitedHandler) WithGroup(name string) slog.Handler {
	return &limitedHandler{next: h.next.WithGroup(name), limits: h.limits}
}

// httpErrorLog is the ErrorLog of an http.Server. net/http writes a line
// per failed TLS handshake or malformed request, each naming the peer's
// address, so that every line would be a message of its own to the
// limiter and a scanner could write as many as it connects. The lines
// become one message each kind, their text an attribute (cut to 512
// bytes); failed handshakes, which any port scan causes, at debug level.
func httpErrorLog(log *slog.Logger) *stdlog.Logger {
	return stdlog.New(httpErrorWriter{log: log}, "", 0)
}

type httpErrorWriter struct{ log *slog.Logger }

func (w httpErrorWriter) Write(p []byte) (int, error) {
	line := presence.Truncate(strings.TrimSpace(string(p)), 512)
	if strings.HasPrefix(line, "http: TLS handshake error") {
		w.log.Debug("http: TLS handshake failed", "detail", line)
	} else {
		w.log.Warn("http server error", "detail", line)
	}
	return len(p), nil
}
