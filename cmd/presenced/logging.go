package main

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
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
	// message, and the table is started afresh.
	logKeysMax = 4096
)

// newLogger returns the process logger.
func newLogger(c config, w io.Writer) *slog.Logger {
	level, _ := parseLevel(c.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if c.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(&limitedHandler{next: h, limits: newLogLimits(time.Now)})
}

// logLimits counts lines per message text; it is shared by every handler
// derived from one logger (With adds attributes, not a new budget).
type logLimits struct {
	now func() time.Time
	mu  sync.Mutex
	by  map[string]*logCount
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
	if c == nil {
		if len(l.by) >= logKeysMax {
			clear(l.by)
		}
		c = &logCount{windowStart: now}
		l.by[key] = c
	}
	if now.Sub(c.windowStart) >= logWindow {
		c.windowStart, c.lines = now, 0
	}
	if c.lines >= logBurst {
		c.suppressed++
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
