package rocketmq

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// recordingHandler keeps every record it is given.
type recordingHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r)
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

func TestRlogAdapterFiltersAndBoundsFields(t *testing.T) {
	h := &recordingHandler{}
	a := &rlogAdapter{log: slog.New(h)}
	a.min.Store(int64(slog.LevelWarn))

	a.Info("rebalance", map[string]any{"group": "g"})
	a.Warning("consume failed", map[string]any{"messages": strings.Repeat("x", 5000), "group": "g"})
	a.Fatal("client broke", nil) // must not exit the process
	a.Level("debug")
	a.Debug("now visible", nil)

	if len(h.records) != 3 {
		t.Fatalf("%d records, want 3 (info filtered out)", len(h.records))
	}
	if h.records[1].Level != slog.LevelError {
		t.Errorf("Fatal logged at %s, want ERROR", h.records[1].Level)
	}
	h.records[0].Attrs(func(attr slog.Attr) bool {
		if attr.Key == "messages" && len(attr.Value.String()) > maxFieldChars+10 {
			t.Errorf("a %d-character field was logged whole", len(attr.Value.String()))
		}
		return true
	})
}
