package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// config is every setting of presenced. Each flag has a PRESENCE_*
// environment variable; a flag given on the command line wins.
type config struct {
	MQTTAddr string
	HTTPAddr string
	// HTTPMaxConns is --http-max-connections; 0: from the file limit.
	HTTPMaxConns int
	DatabaseURL  string
	// DatabaseURLFile holds the URL instead, so that a password in it is
	// on neither the command line nor in the environment.
	DatabaseURLFile secretFile
	DataDir         string
	Node            string
	LogLevel        string
	LogFormat       string
	BatchSize       int
	StoreWriters    int // store transactions applying events at once
	ShutdownWait    time.Duration
	ConnectTimeout  time.Duration
	AllowAnonymous  string // "auto", "true" or "false"

	// API is the HTTP API's configuration (see apiconfig.go).
	API apiConfig
	// RocketMQ is the transport of the broker and consumer modes.
	RocketMQ rocketmqConfig
	// MQTT is the broker's admission and limits (serve and broker modes).
	MQTT mqttConfig
	// Durability is the outbox, the disk reserve and the supervision of
	// the private PostgreSQL (see durability.go).
	Durability durabilityConfig
	// Retention of closed channels and parked messages (see retention.go),
	// in the modes that have the database.
	Retention retentionConfig
	// TLS of the MQTT and HTTP listeners (see tlsconfig.go).
	TLS tlsConfig
	// Listen is MQTT over WebSocket and the PROXY protocol (see
	// listenconfig.go).
	Listen listenConfig
	// Webhooks of serve and api (see webhookconfig.go).
	Webhooks webhookConfig

	// Node liveness (see nodes.go).
	NodeLease       time.Duration
	NodeGrace       time.Duration
	HeartbeatEvery  time.Duration
	ReconcileEvery  time.Duration
	LeaseCheckEvery time.Duration
}

// envFlags registers flags whose defaults come from the environment, and
// remembers the environment variable of each for the usage text.
type envFlags struct {
	fs     *flag.FlagSet
	getenv func(string) string
	errs   []error
}

func envName(flagName string) string {
	return "PRESENCE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (e *envFlags) String(p *string, name, def, usage string) {
	if v := e.getenv(envName(name)); v != "" {
		def = v
	}
	e.fs.StringVar(p, name, def, usage+" ("+envName(name)+")")
}

// Secret is String for a flag whose value is a secret (a token, a key, a
// URL that may carry a password): its PRESENCE_* variable sets the value
// but not the default that -h prints, so help output never shows it.
func (e *envFlags) Secret(p *string, name, usage string) {
	e.fs.StringVar(p, name, "", usage+" ("+envName(name)+"; never printed)")
	if v := e.getenv(envName(name)); v != "" {
		*p = v // after StringVar, which sets *p to the default
	}
}

func (e *envFlags) Int(p *int, name string, def int, usage string) {
	if v := e.getenv(envName(name)); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s=%q is not an integer", envName(name), v))
		} else {
			def = n
		}
	}
	e.fs.IntVar(p, name, def, usage+" ("+envName(name)+")")
}

func (e *envFlags) Duration(p *time.Duration, name string, def time.Duration, usage string) {
	if v := e.getenv(envName(name)); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s=%q is not a duration (like 30s or 5m)", envName(name), v))
		} else {
			def = d
		}
	}
	e.fs.DurationVar(p, name, def, usage+" ("+envName(name)+")")
}

// flagUsers names the commands that use each common flag; one not listed
// is offered by every command.
var flagUsers = map[string][]string{
	"mqtt-addr":            {"serve", "broker"},
	"connect-timeout":      {"serve", "broker"},
	"allow-anonymous":      {"serve", "broker"},
	"node":                 {"serve", "broker"},
	"node-lease":           {"serve", "broker"},
	"heartbeat-every":      {"serve", "broker"},
	"reconcile-every":      {"serve", "broker"},
	"batch-size":           {"serve"},
	"store-writers":        {"serve", "consumer"},
	"node-grace":           {"serve", "api", "consumer"},
	"lease-check-every":    {"serve", "api", "consumer"},
	"database-url":         {"serve", "api", "consumer", "migrate"},
	"database-url-file":    {"serve", "api", "consumer", "migrate"},
	"http-addr":            {"serve", "broker", "consumer", "api"},
	"http-max-connections": {"serve", "broker", "consumer", "api"},
	// RocketMQ's, among broker, consumer and api (see rocketmqconfig.go).
	"rocketmq-topic":            {"broker", "consumer"},
	"rocketmq-per-group-topics": {"broker"},
	"rocketmq-consume-topics":   {"consumer"},
	"rocketmq-consumer-group":   {"consumer"},
	"rocketmq-producer-group":   {"broker", "api"},
	"rocketmq-control-topic":    {"broker", "api"},
	"rocketmq-control-group":    {"broker"},
	"rocketmq-kick-wait":        {"api"},
	"shutdown-timeout":          {"serve", "broker", "consumer", "api"},
}

// apiCommands serve the HTTP API, and take its flags (registerAPIFlags).
var apiCommands = []string{"serve", "api"}

// refuseUnused turns a common flag the command does not use, given on its
// command line, into a usage error that says which commands take it.
func refuseUnused(command string, unused *flag.FlagSet, args []string) error {
	for _, a := range args {
		if a == "--" {
			return nil
		}
		flagName, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || unused.Lookup(flagName) == nil {
			continue
		}
		users := flagUsers[flagName]
		if users == nil { // not a common flag of the table: one of the API's
			users = apiCommands
		}
		return usageError{fmt.Errorf("presenced %s does not use --%s: it is a flag of %s", command, flagName,
			joinAnd(users))}
	}
	return nil
}

// joinAnd lists words as "a, b and c".
func joinAnd(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}

// parseServeConfig reads the flags of "presenced serve" and their
// environment variables.
func parseServeConfig(name string, args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("presenced "+name, flag.ContinueOnError)
	f := &envFlags{fs: fs, getenv: getenv}
	// A flag this command has no use for is not offered (its -h does not
	// list it, the command line refuses it); it still takes its default
	// or environment value, so that shared checks see sane values and a
	// deployment's shared environment does not trip a command.
	unused := &envFlags{fs: flag.NewFlagSet("unused", flag.ContinueOnError), getenv: getenv}
	offer := func(flagName string) *envFlags {
		if uses := flagUsers[flagName]; uses != nil && !slices.Contains(uses, name) {
			return unused
		}
		return f
	}
	offer("mqtt-addr").String(&c.MQTTAddr, "mqtt-addr", ":1883", "MQTT listen address")
	offer("http-addr").String(&c.HTTPAddr, "http-addr", ":8080", "HTTP API listen address")
	offer("http-max-connections").Int(&c.HTTPMaxConns, "http-max-connections", 0, "most HTTP connections (API, SSE streams, probes) held at once; more are closed at once (0: half of what --mqtt-max-connections leaves of the open-file limit, at least 64)")
	offer("database-url").Secret(&c.DatabaseURL, "database-url", "PostgreSQL URL; empty starts a private PostgreSQL cluster under --data-dir")
	c.DatabaseURLFile = secretFile{into: &c.DatabaseURL, intoFlag: "database-url"}
	offer("database-url-file").File(&c.DatabaseURLFile, "database-url-file", "file holding the PostgreSQL URL, so that its password is not on the command line (trailing whitespace ignored; PGPASSFILE and ~/.pgpass work too)")
	f.String(&c.DataDir, "data-dir", defaultDataDir(getenv), "directory for the private PostgreSQL cluster and local state")
	offer("node").String(&c.Node, "node", defaultNode(), "broker node id, stable across restarts")
	f.String(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.String(&c.LogFormat, "log-format", "text", "log format: text or json")
	offer("batch-size").Int(&c.BatchSize, "batch-size", 1000, "most events applied to the store in one transaction")
	offer("store-writers").Int(&c.StoreWriters, "store-writers", 2, "store transactions applying events at once (more use more PostgreSQL cores; the change feed stays exact)")
	offer("shutdown-timeout").Duration(&c.ShutdownWait, "shutdown-timeout", 30*time.Second, "how long a graceful shutdown may take")
	offer("connect-timeout").Duration(&c.ConnectTimeout, "connect-timeout", 10*time.Second, "how long a new MQTT connection may take to send CONNECT")
	offer("allow-anonymous").String(&c.AllowAnonymous, "allow-anonymous", "auto", "accept MQTT clients without credentials: true, false, or auto (only while the MQTT listener is on loopback)")
	offer("node-lease").Duration(&c.NodeLease, "node-lease", 30*time.Second, "a broker node silent for this long has its clients answered as unknown")
	offer("node-grace").Duration(&c.NodeGrace, "node-grace", 30*time.Second, "a node silent past its lease for this long more has its channels closed as node_lost")
	offer("heartbeat-every").Duration(&c.HeartbeatEvery, "heartbeat-every", 5*time.Second, "how often a broker node reports that it is alive")
	offer("reconcile-every").Duration(&c.ReconcileEvery, "reconcile-every", 30*time.Second, "how often a broker node reports the channels it holds, repairing lost tcpclean events (0: never)")
	offer("lease-check-every").Duration(&c.LeaseCheckEvery, "lease-check-every", time.Second, "how often node leases are checked")
	// The API's flags belong to the commands that serve it; the others'
	// HTTP listener serves only /healthz, /readyz and /metrics.
	apiFlags := unused
	if slices.Contains(apiCommands, name) {
		apiFlags = f
	}
	registerAPIFlags(apiFlags, &c.API)
	registerDurabilityFlags(f, &c.Durability, name)
	if name == "serve" || name == "consumer" || name == "api" {
		registerRetentionFlags(f, &c.Retention)
	}
	if name == "broker" || name == "consumer" || name == "api" {
		registerRocketMQFlags(offer, &c.RocketMQ)
		c.RocketMQ.optional = name == "api" // kick through RocketMQ only when configured
	}
	if name == "serve" || name == "broker" {
		registerMQTTFlags(f, &c.MQTT)
		registerListenFlags(f, &c.Listen)
	}
	if name != "migrate" {
		registerTLSFlags(f, &c.TLS, name)
	}
	if name == "serve" || name == "api" {
		registerWebhookFlags(f, &c.Webhooks)
	}
	if err := refuseUnused(name, unused.fs, args); err != nil {
		return c, err
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return c, err
	}
	if err := errors.Join(f.errs...); err != nil {
		return c, usageError{err}
	}
	if err := c.validate(); err != nil {
		return c, usageError{err}
	}
	return c, nil
}

func (c config) validate() error {
	var errs []error
	if c.HTTPMaxConns < 0 {
		errs = append(errs, fmt.Errorf("--http-max-connections must not be negative, not %d", c.HTTPMaxConns))
	}
	if c.DatabaseURLFile.conflicts() {
		errs = append(errs, errors.New("--database-url and --database-url-file are both set; give the URL one way only"))
	}
	if c.BatchSize < 1 || c.BatchSize > 10_000 {
		errs = append(errs, fmt.Errorf("--batch-size must be within 1..10000, not %d", c.BatchSize))
	}
	if c.StoreWriters < 1 || c.StoreWriters > 16 {
		errs = append(errs, fmt.Errorf("--store-writers must be within 1..16, not %d", c.StoreWriters))
	}
	switch c.AllowAnonymous {
	case "auto", "true", "false":
	default:
		errs = append(errs, fmt.Errorf("--allow-anonymous must be auto, true or false, not %q", c.AllowAnonymous))
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("--log-format must be text or json, not %q", c.LogFormat))
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	if c.Node == "" {
		errs = append(errs, errors.New("--node must not be empty"))
	}
	errs = append(errs, c.API.validate()...)
	errs = append(errs, c.Durability.validate()...)
	errs = append(errs, c.TLS.validate()...)
	if err := c.Listen.wssProxyWithoutListener(c.TLS.MQTTWSSAddr); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.Listen.validate()...)
	if c.Webhooks.offered() {
		errs = append(errs, c.Webhooks.validate()...)
	}
	if err := validateNodeTimes(c); err != nil {
		errs = append(errs, err)
	}
	if c.Retention != (retentionConfig{}) {
		if err := c.Retention.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.MQTT != (mqttConfig{}) {
		if err := c.MQTT.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.RocketMQ != (rocketmqConfig{}) {
		if err := c.RocketMQ.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func parseLevel(s string) (slog.Level, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level must be debug, info, warn or error, not %q", s)
	}
	return level, nil
}

// defaultDataDir is /var/lib/presenced for root (the cluster runs as an
// unprivileged user who cannot enter /root), else the XDG data directory.
func defaultDataDir(getenv func(string) string) string {
	if os.Geteuid() == 0 {
		return "/var/lib/presenced"
	}
	if d := getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "presenced")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "presenced")
	}
	return "presenced-data"
}

func defaultNode() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		return "presenced"
	}
	return host
}
