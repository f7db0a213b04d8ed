package main

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAPIFlagsFromEnvironment(t *testing.T) {
	cfg, err := parseServeConfig("api", []string{"--api-ingest-tokens", "w1"}, env(map[string]string{
		"PRESENCE_API_READ_TOKENS":     " r1, r2 ,,",
		"PRESENCE_API_INGEST_TOKENS":   "ignored: the flag wins",
		"PRESENCE_API_SSE_HEARTBEAT":   "5s",
		"PRESENCE_API_MAX_BODY_BYTES":  "1024",
		"PRESENCE_FEED_POLL_INTERVAL":  "250ms",
		"PRESENCE_API_REQUEST_TIMEOUT": "3s",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	api := cfg.API
	if !slices.Equal(tokens(api.ReadTokens), []string{"r1", "r2"}) || !slices.Equal(tokens(api.IngestTokens), []string{"w1"}) ||
		api.Heartbeat != 5*time.Second || api.MaxBodyBytes != 1024 || api.FeedPoll != 250*time.Millisecond ||
		api.RequestTimeout != 3*time.Second || api.MaxStreams != 1000 || api.StreamRing != 10_000 {
		t.Fatalf("api config %+v", api)
	}
}

func TestAPIFlagErrors(t *testing.T) {
	for args, want := range map[string]string{
		"--api-max-in-flight 0":    "--api-max-in-flight must be at least 1",
		"--api-sse-heartbeat 0s":   "--api-sse-heartbeat must be positive",
		"--feed-poll-interval -1s": "--feed-poll-interval must be positive",
		"--api-max-body-bytes -5":  "--api-max-body-bytes must be at least 1",
		"--api-request-timeout 0s": "--api-request-timeout must be positive",
	} {
		_, err := parseServeConfig("api", strings.Fields(args), env(nil), io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", args, err, want)
		}
	}
}
