package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/consumer"
	"github.com/presenced/presenced/consumer/outbox"
	"github.com/presenced/presenced/consumer/rocketmq"
	"github.com/presenced/presenced/mqttbroker"
	"github.com/presenced/presenced/presence"
)

// runBroker runs the MQTT broker alone ("presenced broker"): every
// lifecycle event and node report is appended to the durable outbox under
// --data-dir before the broker acts on it (a CONNACK is sent only once the
// connect event is on disk), and forwarded in order to RocketMQ. When
// RocketMQ is unreachable the outbox grows, and drains when it returns; a
// restart resumes from what was not acknowledged.
func runBroker(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseServeConfig("broker", args, getenv, stderr)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	hooks, err := loadTestHooks(getenv, log)
	if err != nil {
		return err
	}
	rocketmq.RouteClientLogs(log.With("component", "rocketmq-client"), slog.LevelWarn)
	epoch := newEpoch()
	log.Info("starting presenced broker", "version", version, "node", cfg.Node, "epoch", epoch)

	box, err := outbox.Open(filepath.Join(cfg.DataDir, "outbox"), outbox.Options{
		MaxBytes: int64(cfg.RocketMQ.OutboxMaxMB) << 20,
		Log:      log.With("component", "outbox"),
	})
	if err != nil {
		return fmt.Errorf("open outbox: %w", err)
	}
	defer box.Close()
	forwarder, err := rocketmq.NewForwarder(outboxSource{box}, rocketmq.ForwarderConfig{
		NameServers:   cfg.RocketMQ.nameServers(),
		Routing:       rocketmq.Routing{Topic: cfg.RocketMQ.Topic, PerGroupTopics: cfg.RocketMQ.PerGroupTopics},
		ProducerGroup: cfg.RocketMQ.ProducerGroup,
		AccessKey:     cfg.RocketMQ.AccessKey,
		SecretKey:     cfg.RocketMQ.SecretKey,
		Log:           log,
	})
	if err != nil {
		return err
	}

	mqttListener, err := mqttbroker.Listen(ctx, cfg.MQTTAddr)
	if err != nil {
		return fmt.Errorf("listen for MQTT on %s: %w", cfg.MQTTAddr, err)
	}
	httpListener, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		mqttListener.Close()
		return fmt.Errorf("listen for HTTP on %s: %w", cfg.HTTPAddr, err)
	}

	// Appends wait for their fsync whatever the context: a connect must be
	// on disk before the CONNACK, and a tcpclean must never be lost.
	appendCtx := context.WithoutCancel(ctx)
	reporter := &consumer.NodeReporter{
		Node: cfg.Node, Epoch: epoch, Generation: nodeGeneration(cfg.DataDir, log),
		Lease: cfg.NodeLease, HeartbeatEvery: cfg.HeartbeatEvery, ReconcileEvery: cfg.ReconcileEvery,
		Emit: func(n presence.NodeEvent) error { return box.AppendNode(appendCtx, n) },
		Log:  log.With("component", "nodes"), Now: hooks.now,
	}
	brokerConfig, err := newBrokerConfig(cfg, epoch, mqttListener.Addr(), hooks, log)
	if err != nil {
		mqttListener.Close()
		httpListener.Close()
		return err
	}
	broker := mqttbroker.New(brokerConfig, reporter.Stamp(func(e presence.Event) error { return box.Append(appendCtx, e) }))
	reporter.OpenChannels = broker.OpenChannels

	reg := prometheus.NewRegistry()
	reg.MustRegister(brokerCollector{stats: broker.Stats}, outboxCollector{box: box, forwarder: forwarder})
	ops := opsServer(func(context.Context) error { return nil }, reg, log)

	if err := reporter.Start(); err != nil {
		return fmt.Errorf("announce node start: %w", err)
	}
	forwardCtx, stopForwarding := context.WithCancel(context.WithoutCancel(ctx))
	defer stopForwarding()
	nodesCtx, stopNodes := context.WithCancel(ctx)
	defer stopNodes()
	parts := newComponents()
	parts.run("forwarder", func() error { return forwarder.Run(forwardCtx) })
	parts.run("mqtt server", func() error { return broker.Serve(mqttListener) })
	parts.run("node reporter", func() error { return reporter.Run(nodesCtx) })
	parts.run("http server", func() error { return ops.Serve(httpListener) })
	log.Info("listening", "mqtt", mqttListener.Addr().String(), "http", httpListener.Addr().String())

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "cause", context.Cause(ctx))
	case runErr = <-parts.Failed():
		log.Error("component failed; shutting down", "err", runErr)
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownWait)
	defer cancel()
	stopNodes()
	if err := broker.Shutdown(shutdownCtx); err != nil {
		log.Error("mqtt shutdown", "err", err)
	}
	if err := reporter.Stop(); err != nil {
		log.Error("announce node stop", "err", err)
	}
	// Forward what the outbox holds (the tcpcleans of the shutdown among
	// it) until the deadline; whatever is left is sent after the restart.
	if err := forwarder.Shutdown(shutdownCtx); err != nil {
		log.Warn("forwarder stopped with events left in the outbox; they are sent after the next start", "err", err, "backlog", box.Stats().BacklogRecords)
	}
	stopForwarding()
	if err := ops.Shutdown(shutdownCtx); err != nil {
		log.Error("http shutdown", "err", err)
	}
	parts.Wait()
	log.Info("stopped")
	return runErr
}

// outboxSource adapts the outbox to the forwarder's Source.
type outboxSource struct{ *outbox.Outbox }

func (s outboxSource) Read(ctx context.Context, max int) ([]rocketmq.Entry, error) {
	records, err := s.Outbox.Read(ctx, max)
	entries := make([]rocketmq.Entry, len(records))
	for i, r := range records {
		entries[i] = rocketmq.Entry{Seq: r.Seq, Kind: r.Kind.String(), Payload: r.Payload}
	}
	return entries, err
}

// outboxCollector exposes the outbox backlog and the forwarder's counters.
type outboxCollector struct {
	box       *outbox.Outbox
	forwarder *rocketmq.Forwarder
}

var (
	outboxBacklogDesc  = prometheus.NewDesc("presenced_outbox_backlog_records", "Events in the outbox not yet acknowledged by RocketMQ.", nil, nil)
	outboxBytesDesc    = prometheus.NewDesc("presenced_outbox_backlog_bytes", "Bytes in the outbox not yet acknowledged by RocketMQ.", nil, nil)
	outboxRefusedDesc  = prometheus.NewDesc("presenced_outbox_refused_total", "Events refused because the outbox was full.", nil, nil)
	forwardedDesc      = prometheus.NewDesc("presenced_forwarder_sent_total", "Events sent to RocketMQ.", nil, nil)
	forwardErrorsDesc  = prometheus.NewDesc("presenced_forwarder_send_errors_total", "Failed sends to RocketMQ (retried).", nil, nil)
	forwarderSkipsDesc = prometheus.NewDesc("presenced_forwarder_skipped_total", "Outbox records that could not be turned into messages.", nil, nil)
)

func (c outboxCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{outboxBacklogDesc, outboxBytesDesc, outboxRefusedDesc, forwardedDesc, forwardErrorsDesc, forwarderSkipsDesc} {
		ch <- d
	}
}

func (c outboxCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.box.Stats()
	ch <- prometheus.MustNewConstMetric(outboxBacklogDesc, prometheus.GaugeValue, float64(s.BacklogRecords))
	ch <- prometheus.MustNewConstMetric(outboxBytesDesc, prometheus.GaugeValue, float64(s.BacklogBytes))
	ch <- prometheus.MustNewConstMetric(outboxRefusedDesc, prometheus.CounterValue, float64(s.Refused))
	ch <- prometheus.MustNewConstMetric(forwardedDesc, prometheus.CounterValue, float64(c.forwarder.Stats.Forwarded.Load()))
	ch <- prometheus.MustNewConstMetric(forwardErrorsDesc, prometheus.CounterValue, float64(c.forwarder.Stats.SendErrors.Load()))
	ch <- prometheus.MustNewConstMetric(forwarderSkipsDesc, prometheus.CounterValue, float64(c.forwarder.Stats.Skipped.Load()))
}
