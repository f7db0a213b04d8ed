package main

import (
	"fmt"
	"net"
	"strings"
	"time"
)

// apiConfig is the configuration of the HTTP API, shared by "serve" and
// "api".
type apiConfig struct {
	ReadTokens       string     // comma-separated; never logged
	ReadTokensFile   secretFile // one token per line or comma-separated
	IngestTokens     string     // comma-separated; never logged
	IngestTokensFile secretFile
	AdminTokensFile  secretFile // from a file only: these tokens close clients' connections
	// Open allows the API without tokens on a listener that is not
	// loopback (see checkAccess).
	Open               bool
	RequestTimeout     time.Duration
	MaxBodyBytes       int
	MaxInFlight        int
	Heartbeat          time.Duration
	StreamWriteTimeout time.Duration
	MaxStreams         int
	StreamRing         int
	FeedPoll           time.Duration
	OfflineCache       int
}

// registerAPIFlags adds the API's flags to f.
func registerAPIFlags(f *envFlags, c *apiConfig) {
	f.Secret(&c.ReadTokens, "api-read-tokens", "comma-separated bearer tokens for the read routes and /stream; with no token of either kind the API is open, which presenced allows only on a loopback --http-addr (see --api-open)")
	f.File(&c.ReadTokensFile, "api-read-tokens-file", "file of bearer tokens for the read routes and /stream, one per line or comma-separated (added to --api-read-tokens)")
	f.Secret(&c.IngestTokens, "api-ingest-tokens", "comma-separated bearer tokens for POST /events")
	f.File(&c.IngestTokensFile, "api-ingest-tokens-file", "file of bearer tokens for POST /events, one per line or comma-separated (added to --api-ingest-tokens)")
	f.File(&c.AdminTokensFile, "api-admin-tokens-file", "file of bearer tokens for DELETE /clients/{id}/connection (closing a client's connection), one per line or comma-separated")
	f.Bool(&c.Open, "api-open", false, "serve the HTTP API without tokens even when --http-addr is not loopback (anyone who reaches it can read and forge presence)")
	f.Duration(&c.RequestTimeout, "api-request-timeout", 10*time.Second, "most time one API request may take (/stream excepted)")
	f.Int(&c.MaxBodyBytes, "api-max-body-bytes", 4<<20, "largest request body; larger ones get 413")
	f.Int(&c.MaxInFlight, "api-max-in-flight", 4096, "most API requests served at once; more get 429")
	f.Duration(&c.Heartbeat, "api-sse-heartbeat", 15*time.Second, "interval of /stream heartbeat comments")
	f.Duration(&c.StreamWriteTimeout, "api-sse-write-timeout", 10*time.Second, "most time one write of a /stream response may take; a client that does not take it in time is dropped and its connection closed")
	f.Int(&c.MaxStreams, "api-max-streams", 1000, "most /stream subscribers at once; more get 429")
	f.Int(&c.StreamRing, "api-stream-ring", 10_000, "recent changes remembered for /stream resumption with Last-Event-ID")
	f.Duration(&c.FeedPoll, "feed-poll-interval", time.Second, "how often the view reads the store's change feed without a notification")
	f.Int(&c.OfflineCache, "view-offline-cache", 100_000, "most offline clients the in-memory view remembers (~150 B each; every online client is always held); lookups of others read their last event time from the store (0: none)")
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
	if c.OfflineCache < 0 {
		errs = append(errs, fmt.Errorf("--view-offline-cache must be 0 or more, not %d", c.OfflineCache))
	}
	for name, d := range map[string]time.Duration{"api-request-timeout": c.RequestTimeout, "api-sse-heartbeat": c.Heartbeat,
		"api-sse-write-timeout": c.StreamWriteTimeout, "feed-poll-interval": c.FeedPoll} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("--%s must be positive, not %v", name, d))
		}
	}
	for name, file := range map[string]secretFile{"api-read-tokens-file": c.ReadTokensFile, "api-ingest-tokens-file": c.IngestTokensFile,
		"api-admin-tokens-file": c.AdminTokensFile} {
		if file.Path != "" && len(tokens(file.content)) == 0 {
			errs = append(errs, fmt.Errorf("--%s %s holds no token", name, file.Path))
		}
	}
	return errs
}

// readTokens are the accepted read tokens: the flag's and the file's.
func (c apiConfig) readTokens() []string {
	return append(tokens(c.ReadTokens), tokens(c.ReadTokensFile.content)...)
}

// ingestTokens are the accepted ingest tokens: the flag's and the file's.
func (c apiConfig) ingestTokens() []string {
	return append(tokens(c.IngestTokens), tokens(c.IngestTokensFile.content)...)
}

// open reports whether the API has no token of either kind: then it
// answers everyone.
func (c apiConfig) open() bool {
	return len(c.readTokens()) == 0 && len(c.ingestTokens()) == 0 && len(c.adminTokens()) == 0
}

// adminTokens returns the tokens of --api-admin-tokens-file.
func (c apiConfig) adminTokens() []string { return tokens(c.AdminTokensFile.content) }

// checkAccess is "secure by default off loopback" for the HTTP API
// (DESIGN.md, invariant 4): an API without tokens answers anyone who
// reaches httpAddr — and lets them forge presence with POST /events — so
// it is allowed only while httpAddr is a loopback address, or with
// --api-open=true. httpAddr is the --http-addr value; a host name is
// resolved as net.Listen resolves it, and an empty host (":8080") is every
// interface, not loopback. Call it before listening, in the modes that
// serve the API.
func (c apiConfig) checkAccess(httpAddr string) error {
	if !c.open() || c.Open || isLoopback(httpAddr) {
		return nil
	}
	// Settings that contradict each other: a usage error (exit 2).
	return usageError{fmt.Errorf("refusing to serve the HTTP API without tokens on --http-addr %q, which is not a loopback address: "+
		"anyone who reaches it could read presence and forge events. Set --api-read-tokens or --api-read-tokens-file "+
		"(and --api-ingest-tokens or --api-ingest-tokens-file for POST /events), listen on loopback (--http-addr 127.0.0.1:8080), "+
		"or pass --api-open=true to serve it open deliberately", httpAddr)}
}

// isLoopback reports whether a listener on addr (host:port) would accept
// connections from this machine only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	tcp, err := net.ResolveTCPAddr("tcp", addr)
	return err == nil && tcp.IP != nil && tcp.IP.IsLoopback()
}

// hostAllowed is api.Config.HostAllowed: nil (every host name) unless the
// API is open because it listens on loopback, when it serves only loopback
// host names, which no DNS answer can make of a stranger's site.
func (c apiConfig) hostAllowed() func(host string) bool {
	if !c.open() || c.Open {
		return nil
	}
	return loopbackHostname
}

// loopbackHostname reports whether host, a name or an IP literal, can only
// mean this machine without asking DNS: localhost and its subdomains (RFC
// 6761, as browsers treat them) and loopback addresses.
func loopbackHostname(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// tokens splits a token list — comma-separated, one per line, or both —
// dropping empty entries and surrounding whitespace.
func tokens(list string) []string {
	var out []string
	for t := range strings.FieldsFuncSeq(list, func(r rune) bool { return r == ',' || r == '\n' }) {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}
