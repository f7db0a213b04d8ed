package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/consumer/webhook"
	"github.com/presenced/presenced/presence/pgstore"
)

// Bounds of the webhooks: what a receiver that is down or slow can make
// presenced hold is one batch per hook (--webhook-batch changes) and one
// response read of 64 KiB at a time; its backlog stays in the store's
// change feed.
const (
	maxWebhooks     = 16
	maxWebhookBatch = 1000
)

// webhookConfig is the webhooks of serve and api (see consumer/webhook).
type webhookConfig struct {
	URLs        namedValues // name=url, repeatable
	SecretFiles namedValues // name=path, repeatable; read at start-up
	Timeout     time.Duration
	Batch       int
	RetryMax    time.Duration
	Lease       time.Duration
	Poll        time.Duration

	secrets map[string]string // name → secret, read from SecretFiles
}

// namedValues is a repeatable name=value flag; its environment variable
// holds the pairs comma-separated.
type namedValues []namedValue

type namedValue struct{ name, value string }

func (n *namedValues) String() string {
	if n == nil {
		return ""
	}
	parts := make([]string, len(*n))
	for i, v := range *n {
		parts[i] = v.name + "=" + v.value
	}
	return strings.Join(parts, ",")
}

func (n *namedValues) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" || value == "" {
		// Not quoted: the value may be a URL with a token in it.
		return errors.New("want name=value")
	}
	*n = append(*n, namedValue{name: name, value: value})
	return nil
}

// hookName: it appears in delivery ids, metrics and the store.
var hookName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

func registerWebhookFlags(f *envFlags, c *webhookConfig) {
	c.secrets = map[string]string{} // shared by the copies of the config: validate fills it
	f.namedValues(&c.URLs, "webhook-url", "a webhook as name=url (repeatable): client presence changes are POSTed there, signed with the secret of --webhook-secret-file name=path")
	f.namedValues(&c.SecretFiles, "webhook-secret-file", "name=path of the file holding a webhook's HMAC-SHA256 signing secret (repeatable; one per --webhook-url)")
	f.Duration(&c.Timeout, "webhook-timeout", 10*time.Second, "most time one webhook delivery attempt may take; a slower receiver's attempt fails and is retried")
	f.Int(&c.Batch, "webhook-batch", 100, "most presence changes in one webhook delivery, and all a hook holds in memory (1..1000)")
	f.Duration(&c.RetryMax, "webhook-retry-max", time.Minute, "longest wait between failed attempts of a webhook delivery (the wait doubles from 250ms)")
	f.Duration(&c.Lease, "webhook-lease", 30*time.Second, "how long a process's claim on a webhook lasts unrenewed; another process configured with the same hook takes over after it (at least twice --webhook-timeout)")
	f.Duration(&c.Poll, "webhook-poll-interval", time.Second, "how often an idle webhook reads the change feed")
}

// namedValues registers a repeatable name=value flag; its PRESENCE_*
// variable holds comma-separated pairs, which the command line adds to.
//
// The variable is read after the flag is registered, so the default that -h
// prints is empty: a webhook URL may carry a token in its path.
func (e *envFlags) namedValues(p *namedValues, name, usage string) {
	e.fs.Var(p, name, usage+" ("+envName(name)+")")
	if v := e.getenv(envName(name)); v != "" {
		for _, pair := range strings.Split(v, ",") {
			if err := p.Set(strings.TrimSpace(pair)); err != nil {
				e.errs = append(e.errs, fmt.Errorf("%s: %w", envName(name), err))
			}
		}
	}
}

// offered reports whether the command has the webhook flags.
func (c webhookConfig) offered() bool { return c.secrets != nil }

// validate checks the hooks and reads their secrets (only the paths are
// ever printed).
func (c webhookConfig) validate() []error {
	var errs []error
	if len(c.URLs) > maxWebhooks {
		errs = append(errs, fmt.Errorf("--webhook-url is given %d times; at most %d hooks are allowed", len(c.URLs), maxWebhooks))
	}
	urls := map[string]bool{}
	for _, h := range c.URLs {
		if !hookName.MatchString(h.name) {
			errs = append(errs, fmt.Errorf("--webhook-url %s=…: the name must be 1-64 letters, digits, '.', '_' or '-'", h.name))
		}
		if urls[h.name] {
			errs = append(errs, fmt.Errorf("--webhook-url %s is given twice", h.name))
		}
		urls[h.name] = true
		if u, err := url.Parse(h.value); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("--webhook-url %s: want an http:// or https:// URL with a host", h.name))
		}
	}
	secrets := map[string]bool{}
	for _, s := range c.SecretFiles {
		switch {
		case !urls[s.name]:
			errs = append(errs, fmt.Errorf("--webhook-secret-file %s: no --webhook-url of that name", s.name))
		case secrets[s.name]:
			errs = append(errs, fmt.Errorf("--webhook-secret-file %s is given twice", s.name))
		default:
			secrets[s.name] = true
			secret, err := readSecretFile(s.value)
			if err != nil {
				errs = append(errs, fmt.Errorf("--webhook-secret-file %s: %w", s.name, err))
				continue
			}
			c.secrets[s.name] = secret
		}
	}
	for _, h := range c.URLs {
		if !secrets[h.name] && urls[h.name] {
			errs = append(errs, fmt.Errorf("--webhook-url %s has no secret: give --webhook-secret-file %s=path", h.name, h.name))
			urls[h.name] = false // once
		}
	}
	if c.Batch < 1 || c.Batch > maxWebhookBatch {
		errs = append(errs, fmt.Errorf("--webhook-batch must be within 1..%d, not %d", maxWebhookBatch, c.Batch))
	}
	for name, d := range map[string]time.Duration{"webhook-timeout": c.Timeout, "webhook-retry-max": c.RetryMax,
		"webhook-lease": c.Lease, "webhook-poll-interval": c.Poll} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("--%s must be positive, not %v", name, d))
		}
	}
	if c.Timeout > 0 && c.Lease < 2*c.Timeout {
		errs = append(errs, fmt.Errorf("--webhook-lease (%v) must be at least twice --webhook-timeout (%v): an attempt must end within the lease it started on", c.Lease, c.Timeout))
	}
	return errs
}

// webhookComponent is the webhook dispatcher of a serve or api process
// (nil without hooks); owner names the process in the hooks' leases.
func webhookComponent(c webhookConfig, store *pgstore.Store, owner string, reg prometheus.Registerer, log *slog.Logger) *component {
	if len(c.URLs) == 0 {
		return nil
	}
	hooks := make([]*webhook.Hook, len(c.URLs))
	for i, h := range c.URLs {
		hooks[i] = &webhook.Hook{Name: h.name, URL: h.value, Secret: []byte(c.secrets[h.name]), Timeout: c.Timeout,
			Batch: c.Batch, RetryMin: 250 * time.Millisecond, RetryMax: c.RetryMax}
	}
	reg.MustRegister(webhookCollector{hooks: hooks})
	d := &webhook.Dispatcher{Hooks: hooks, Changes: webhookFeed(store), Feed: store, Channels: channelsAround(store), Cursors: store,
		Owner: owner, Lease: c.Lease, Poll: c.Poll, Log: log.With("component", "webhooks"), Now: time.Now}
	for _, h := range hooks {
		log.Info("webhook configured", "hook", h.Name, "target", h.Target())
	}
	return &component{name: "webhooks", run: d.Run}
}

// webhookFeed adapts the store's webhook feed to the dispatcher's type.
func webhookFeed(store *pgstore.Store) webhook.FeedFunc {
	return func(ctx context.Context, afterSeq int64, limit int) (webhook.FeedBatch, error) {
		b, err := store.WebhookFeed(ctx, afterSeq, limit)
		nodes := make([]webhook.NodeChange, len(b.Nodes))
		for i, n := range b.Nodes {
			nodes[i] = webhook.NodeChange(n)
		}
		spells := make([]webhook.SilentSpell, len(b.Spells))
		for i, sp := range b.Spells {
			spells[i] = webhook.SilentSpell(sp)
		}
		return webhook.FeedBatch{Channels: b.Channels, Nodes: nodes, Spells: spells, UptoSeq: b.UptoSeq}, err
	}
}

// channelsAround adapts the store's query to the dispatcher's type.
func channelsAround(store *pgstore.Store) webhook.ChannelsAroundFunc {
	return func(ctx context.Context, clientIDs []string, afterSeq, uptoSeq int64) ([]webhook.ChannelSeqs, error) {
		channels, err := store.ChannelsAround(ctx, clientIDs, afterSeq, uptoSeq)
		out := make([]webhook.ChannelSeqs, len(channels))
		for i, c := range channels {
			out[i] = webhook.ChannelSeqs(c)
		}
		return out, err
	}
}

// webhookCollector exposes each hook's webhook.Stats; the hook label is
// bounded by maxWebhooks.
type webhookCollector struct{ hooks []*webhook.Hook }

var webhookMetrics = []struct {
	name, help string
	kind       prometheus.ValueType
	value      func(*webhook.Stats) float64
}{
	{"presenced_webhook_delivered_total", "Presence changes a webhook receiver took (2xx).", prometheus.CounterValue,
		func(s *webhook.Stats) float64 { return float64(s.Delivered.Load()) }},
	{"presenced_webhook_failed_attempts_total", "Webhook delivery attempts that failed (non-2xx, timeout, transport error).", prometheus.CounterValue,
		func(s *webhook.Stats) float64 { return float64(s.Failed.Load()) }},
	{"presenced_webhook_cursor", "Feed seq up to which a webhook is done (delivered or no presence change).", prometheus.GaugeValue,
		func(s *webhook.Stats) float64 { return float64(s.Cursor.Load()) }},
	{"presenced_webhook_lag_seq", "How far a webhook's cursor is behind the head of the change feed, in seqs.", prometheus.GaugeValue,
		func(s *webhook.Stats) float64 { return float64(s.Lag()) }},
	{"presenced_webhook_last_success_timestamp_seconds", "Unix time of a webhook's last 2xx (0: none yet in this process).", prometheus.GaugeValue,
		func(s *webhook.Stats) float64 { return float64(s.LastSuccess.Load()) / 1000 }},
	{"presenced_webhook_pending_changes", "Changes of the batch a webhook is delivering: all it holds in memory (at most --webhook-batch).", prometheus.GaugeValue,
		func(s *webhook.Stats) float64 { return float64(s.Pending.Load()) }},
	{"presenced_webhook_leader", "1 while this process holds a webhook's lease and delivers it.", prometheus.GaugeValue,
		func(s *webhook.Stats) float64 { return float64(s.Leader.Load()) }},
}

var webhookDescs = func() []*prometheus.Desc {
	descs := make([]*prometheus.Desc, len(webhookMetrics))
	for i, m := range webhookMetrics {
		descs[i] = prometheus.NewDesc(m.name, m.help, []string{"hook"}, nil)
	}
	return descs
}()

func (c webhookCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range webhookDescs {
		ch <- d
	}
}

func (c webhookCollector) Collect(ch chan<- prometheus.Metric) {
	for _, h := range c.hooks {
		for i, m := range webhookMetrics {
			ch <- prometheus.MustNewConstMetric(webhookDescs[i], m.kind, m.value(h.Stats()), h.Name)
		}
	}
}
