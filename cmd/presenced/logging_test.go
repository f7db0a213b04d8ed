package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRepeatedLogLinesAreLimitedWithACount(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var out bytes.Buffer
	limits := newLogLimits(func() time.Time { return now })
	log := slog.New(&limitedHandler{next: slog.NewTextHandler(&out, nil), limits: limits})

	for i := range 1000 { // one refused CONNECT each, during an outage
		log.Warn("lifecycle event not accepted by the sink", "client", i)
	}
	log.Info("a different message")
	if got := strings.Count(out.String(), "not accepted by the sink"); got != logBurst {
		t.Fatalf("%d lines of the repeated message in one window, want %d", got, logBurst)
	}
	if !strings.Contains(out.String(), "a different message") {
		t.Fatal("another message was held back by the first one's limit")
	}
	// The metric counts what was left out.
	reg := prometheus.NewRegistry()
	reg.MustRegister(limits)
	families, err := reg.Gather()
	if err != nil || len(families) != 1 || families[0].GetName() != "presenced_log_lines_suppressed_total" ||
		families[0].GetMetric()[0].GetCounter().GetValue() != 1000-logBurst {
		t.Fatalf("gathered %v (%v), want presenced_log_lines_suppressed_total %d", families, err, 1000-logBurst)
	}

	out.Reset()
	now = now.Add(logWindow)
	log.Warn("lifecycle event not accepted by the sink", "client", "next")
	if !strings.Contains(out.String(), "suppressed=995") {
		t.Fatalf("first line of the next window %q, want the count of lines left out (995)", out.String())
	}
	out.Reset()
	log.Warn("lifecycle event not accepted by the sink", "client", "after")
	if strings.Contains(out.String(), "suppressed") {
		t.Fatalf("line %q repeats a count already reported", out.String())
	}
}

func TestLogLimitsStayBounded(t *testing.T) {
	l := newLogLimits(time.Now)
	for i := range 3 * logKeysMax {
		l.allow(strings.Repeat("x", i%50) + string(rune('a'+i%26)) + time.Duration(i).String())
	}
	if len(l.by) > logKeysMax {
		t.Fatalf("%d messages tracked, want at most %d", len(l.by), logKeysMax)
	}
}

// TestVariableMessagesShareOneBudget: past logKeysMax distinct messages
// (variable text slipped into one), further ones share one budget instead
// of each getting its own; the messages already tracked keep theirs.
func TestVariableMessagesShareOneBudget(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newLogLimits(func() time.Time { return now })
	for i := range logKeysMax - 1 { // the last place is the overflow's
		l.allow(fmt.Sprintf("message %d", i))
	}
	let := 0
	for i := range 1000 {
		if ok, _ := l.allow(fmt.Sprintf("from 192.0.2.1:%d", 10000+i)); ok {
			let++
		}
	}
	if let != logBurst {
		t.Fatalf("%d of 1000 lines of new messages let through, want %d (one shared budget)", let, logBurst)
	}
	if ok, _ := l.allow("message 7"); !ok {
		t.Fatal("a message tracked before the table filled lost its budget")
	}
}

// TestHTTPErrorLogLinesAreOneMessage: net/http's lines name the peer, so
// each would be a message of its own; they become one message per kind,
// failed TLS handshakes at debug level.
func TestHTTPErrorLogLinesAreOneMessage(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(&limitedHandler{next: slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}), limits: newLogLimits(time.Now)})
	errorLog := httpErrorLog(log)
	for port := range 100 {
		errorLog.Printf("http: TLS handshake error from 192.0.2.1:%d: EOF", 10000+port)
		errorLog.Printf("http: superfluous response.WriteHeader call from 192.0.2.1:%d", 10000+port)
	}
	if got := strings.Count(out.String(), `msg="http: TLS handshake failed"`); got != logBurst {
		t.Fatalf("%d handshake lines of 100, want %d:\n%s", got, logBurst, out.String())
	}
	if got := strings.Count(out.String(), `level=WARN msg="http server error"`); got != logBurst {
		t.Fatalf("%d other lines of 100, want %d", got, logBurst)
	}
	if strings.Contains(out.String(), "level=WARN msg=\"http: TLS") {
		t.Fatal("a failed handshake was logged as a warning")
	}
}
