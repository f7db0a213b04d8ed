package main

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/consumer"
	"github.com/presenced/presenced/consumer/rocketmq"
	"github.com/presenced/presenced/presence"
)

// runConsumer applies lifecycle events and node reports from RocketMQ to
// the store ("presenced consumer"): a clustering-mode push consumer, so any
// number of consumers of one group share the queues. Each batch is applied
// in one transaction through the same idempotent path as in "serve"; a
// transient store error sends the batch back for redelivery; a message that
// is not a valid event is parked in rejected_events and acknowledged. It
// also stores the brokers' refused connects (tag "refused") and checks the
// leases of broker nodes.
func runConsumer(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseServeConfig("consumer", args, getenv, stderr)
	if err != nil {
		return err
	}
	log, logs := newLogger(cfg, stderr)
	raiseFileLimit(log)
	rocketmq.RouteClientLogs(log.With("component", "rocketmq-client"), slog.LevelWarn)
	log.Info("starting presenced consumer", "version", version, "group", cfg.RocketMQ.ConsumerGroup, "topics", cfg.RocketMQ.consumeTopics())
	defaultGCPercent(getenv, consumerGCPercent, log)

	life := newLifecycle(log)
	db, err := openDatabase(ctx, cfg, log)
	if err != nil {
		return err
	}
	life.add(db.component(cfg))
	httpListener, certs, err := listenHTTP(cfg, life, log)
	if err != nil {
		return life.abort(err)
	}

	reg := prometheus.NewRegistry()
	metrics := newConsumerMetrics(reg)
	applier := consumer.NewApplier(consumer.Coalesce(metrics.observeBatches(db.apply), cfg.StoreWriters), nil, log.With("component", "consumer"), time.Now)
	metrics.register(applier)
	nodes := consumer.NewNodeApplier(db.store.ApplyNodeEvent, nil, log.With("component", "nodes"))
	source, err := rocketmq.NewConsumer(rocketmq.ConsumerConfig{
		NameServers: cfg.RocketMQ.nameServers(),
		Group:       cfg.RocketMQ.ConsumerGroup,
		Topics:      cfg.RocketMQ.consumeTopics(),
		// Messages per pull and per callback. 256 rather than 64: the
		// drain from a RocketMQ backlog measured 16.9–18.3k events/s
		// against 14.8–16.2k side by side (BENCHMARKS.md); larger merged
		// transactions spend less of their time between statements.
		BatchSize: 256,
		AccessKey: cfg.RocketMQ.AccessKey,
		SecretKey: cfg.RocketMQ.SecretKey,
		Apply: func(ctx context.Context, events []presence.Event) error {
			return applier.ApplyOnce(ctx, events)
		},
		ApplyNode: nodes.ApplyOnce,
		// Refused connects of the brokers (tag "refused"), through the
		// store method serve uses.
		ApplyRefused: db.store.RecordRefused,
		Reject: func(ctx context.Context, source string, raw []byte, reason string) error {
			err := db.store.RejectEvent(ctx, source, raw, reason)
			if err == nil {
				applier.Stats.Rejected.Add(1)
			}
			return err
		},
		Log: log,
	})
	if err != nil {
		return life.abort(err)
	}
	reg.MustRegister(retryLaterCollector{stats: &source.Stats})
	db.registerMetrics(reg)
	reg.MustRegister(certs, logs)
	ops := opsServer(db.Ready, reg, log)
	life.add(certs.component())

	life.add(httpComponent(ops, httpListener))
	life.add(component{name: "lease monitor", run: leaseMonitor(db.store, cfg, "", log).Run})
	life.add(retention(db.store, cfg.Retention, time.Now, reg, log))
	// Stopping the consumer finishes the batches being applied, then
	// commits offsets.
	life.add(component{name: "rocketmq consumer", run: source.Run})
	log.Info("listening", "http", httpListener.Addr().String())
	err = life.run(ctx, cfg.ShutdownWait)
	log.Info("stopped", "events_applied", applier.Stats.Applied.Load())
	return err
}

// retryLaterCollector exposes how often batches went back to RocketMQ,
// and how many refused connects were stored.
type retryLaterCollector struct{ stats *rocketmq.ConsumerStats }

var (
	rmqRetryLaterDesc = prometheus.NewDesc("presenced_consumer_retry_later_total", "Batches sent back to RocketMQ for redelivery.", nil, nil)
	rmqRefusedDesc    = prometheus.NewDesc("presenced_consumer_refused_connects_total", "Refused CONNECTs of the brokers (tag refused) stored for GET /clients/{id}/refused.", nil, nil)
)

func (c retryLaterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- rmqRetryLaterDesc
	ch <- rmqRefusedDesc
}

func (c retryLaterCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(rmqRetryLaterDesc, prometheus.CounterValue, float64(c.stats.RetryLater.Load()))
	ch <- prometheus.MustNewConstMetric(rmqRefusedDesc, prometheus.CounterValue, float64(c.stats.Refused.Load()))
}
