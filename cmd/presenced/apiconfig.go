package main

import (
	"fmt"
	"strings"
	"time"
)

// apiConfig is the configuration of the HTTP API, shared by "serve" and
// "api".
type apiConfig struct {
	ReadTokens     string // comma-separated
	IngestTokens   string // comma-separated
	RequestTimeout time.Duration
	MaxBodyBytes   int
	MaxInFlight    int
	Heartbeat      time.Duration
	MaxStreams     int
	StreamRing     int
	FeedPoll       time.Duration
}

// registerAPIFlags adds the API's flags to f.
func registerAPIFlags(f *envFlags, c *apiConfig) {
	f.String(&c.ReadTokens, "api-read-tokens", "", "comma-separated bearer tokens for the read routes and /stream; with no token of either kind the API is open")
	f.String(&c.IngestTokens, "api-ingest-tokens", "", "comma-separated bearer tokens for POST /events")
	f.Duration(&c.RequestTimeout, "api-request-timeout", 10*time.Second, "most time one API request may take (/stream excepted)")
	f.Int(&c.MaxBodyBytes, "api-max-body-bytes", 4<<20, "largest request body; larger ones get 413")
	f.Int(&c.MaxInFlight, "api-max-in-flight", 4096, "most API requests served at once; more get 429")
	f.Duration(&c.Heartbeat, "api-sse-heartbeat", 15*time.Second, "interval of /stream heartbeat comments")
	f.Int(&c.MaxStreams, "api-max-streams", 1000, "most /stream subscribers at once; more get 429")
	f.Int(&c.StreamRing, "api-stream-ring", 10_000, "recent changes remembered for /stream resumption with Last-Event-ID")
	f.Duration(&c.FeedPoll, "feed-poll-interval", time.Second, "how often the view reads the store's change feed without a notification")
}

func (c apiConfig) validate() []error {
	var errs []error
	positive := func(name string, v int) {
		if v < 1 {
			errs = append(errs, fmt.Errorf("--%s must be at least 1, not %d", name, v))
		}
	}
	positive("api-max-body-bytes", c.MaxBodyBytes)
	positive("api-max-in-flight", c.MaxInFlight)
	positive("api-max-streams", c.MaxStreams)
	positive("api-stream-ring", c.StreamRing)
	for name, d := range map[string]time.Duration{"api-request-timeout": c.RequestTimeout, "api-sse-heartbeat": c.Heartbeat, "feed-poll-interval": c.FeedPoll} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("--%s must be positive, not %v", name, d))
		}
	}
	return errs
}

// tokens splits a comma-separated token list, dropping empty entries.
func tokens(list string) []string {
	var out []string
	for t := range strings.SplitSeq(list, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}
