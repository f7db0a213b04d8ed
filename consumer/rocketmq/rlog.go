package rocketmq

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/apache/rocketmq-client-go/v2/rlog"
)

// RouteClientLogs sends rocketmq-client-go's logs to log, dropping those
// below minLevel (slog.LevelWarn keeps its routine chatter out). The
// client's logger is process-wide, so call this once, from main.
func RouteClientLogs(log *slog.Logger, minLevel slog.Level) {
	a := &rlogAdapter{log: log.With("component", "rocketmq-client")}
	a.min.Store(int64(minLevel))
	rlog.SetLogger(a)
}

// rlogAdapter implements rlog.Logger on slog.
type rlogAdapter struct {
	log *slog.Logger
	min atomic.Int64
}

// maxFieldChars bounds one logged field: the client logs whole message
// lists (with bodies) on consume errors.
const maxFieldChars = 512

func (a *rlogAdapter) emit(level slog.Level, msg string, fields map[string]any) {
	if level < slog.Level(a.min.Load()) || (msg == "" && len(fields) == 0) {
		return
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	attrs := make([]slog.Attr, 0, len(keys))
	for _, k := range keys {
		var s string
		switch v := fields[k].(type) {
		case int, int32, int64, uint64, bool:
			attrs = append(attrs, slog.Any(k, v))
			continue
		case string:
			s = v
		default:
			s = fmt.Sprint(v)
		}
		if len(s) > maxFieldChars {
			s = s[:maxFieldChars] + "…"
		}
		attrs = append(attrs, slog.String(k, s))
	}
	a.log.LogAttrs(context.Background(), level, strings.TrimSpace(msg), attrs...)
}

func (a *rlogAdapter) Debug(msg string, fields map[string]any) { a.emit(slog.LevelDebug, msg, fields) }
func (a *rlogAdapter) Info(msg string, fields map[string]any)  { a.emit(slog.LevelInfo, msg, fields) }
func (a *rlogAdapter) Warning(msg string, fields map[string]any) {
	a.emit(slog.LevelWarn, msg, fields)
}
func (a *rlogAdapter) Error(msg string, fields map[string]any) { a.emit(slog.LevelError, msg, fields) }

// Fatal logs at error level and does not exit: a client library must not
// end the process.
func (a *rlogAdapter) Fatal(msg string, fields map[string]any) { a.emit(slog.LevelError, msg, fields) }

// Level applies the client's own level names (ROCKETMQ_GO_LOG_LEVEL style).
func (a *rlogAdapter) Level(level string) {
	switch strings.ToLower(level) {
	case "debug":
		a.min.Store(int64(slog.LevelDebug))
	case "info":
		a.min.Store(int64(slog.LevelInfo))
	case "warn", "warning":
		a.min.Store(int64(slog.LevelWarn))
	case "error", "fatal":
		a.min.Store(int64(slog.LevelError))
	}
}

// OutputPath is ignored: output goes wherever the slog handler writes.
func (a *rlogAdapter) OutputPath(string) error { return nil }
