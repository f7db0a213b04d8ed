package api

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// failingKicker fails every kick with err.
type failingKicker struct{ err error }

func (k failingKicker) Kick(context.Context, string, bool) (KickResult, bool, error) {
	return KickResult{}, false, k.err
}

// TestKickThatFailsTellsTheClientWhatAndTheLogWhy: a kick that could not
// be carried out is a 503 saying which connection was not closed; the
// cause (here a broker address, as a RocketMQ send error carries it) goes
// to the log, not to the client.
func TestKickThatFailsTellsTheClientWhatAndTheLogWhy(t *testing.T) {
	h := newHarness(t)
	var logged bytes.Buffer
	cause := errors.New("send the kick command for channel ch-1: dial tcp 10.0.0.7:10911: connection refused")
	srv := New(Config{Heartbeat: time.Hour, Logger: slog.New(slog.NewTextHandler(&logged, nil))},
		Deps{Live: h.live, Kicker: failingKicker{cause}})
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodDelete, "/clients/dev-1/connection", nil))

	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503; body %s", rec.Code, rec.Body)
	}
	body := rec.Body.String()
	if !strings.Contains(body, "closing the connection of dev-1 did not finish") {
		t.Fatalf("problem %s does not say which connection was not closed", body)
	}
	if strings.Contains(body, "10.0.0.7") {
		t.Fatalf("problem %s tells the client the cause's internals", body)
	}
	if !strings.Contains(logged.String(), "10.0.0.7:10911") {
		t.Fatalf("the log does not carry the cause: %s", logged.String())
	}
}
