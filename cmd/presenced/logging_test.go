package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRepeatedLogLinesAreLimitedWithACount(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var out bytes.Buffer
	log := slog.New(&limitedHandler{next: slog.NewTextHandler(&out, nil), limits: newLogLimits(func() time.Time { return now })})

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
