package main

import (
	"context"
	"io"
	"log/slog"

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
// restart resumes from what was not acknowledged. Refused CONNECTs go to
// RocketMQ best-effort (tag "refused"), and the kick commands of the
// control topic close the connections they name on this node.
func runBroker(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseServeConfig("broker", args, getenv, stderr)
	if err != nil {
		return err
	}
	log, logs := newLogger(cfg, stderr)
	raiseFileLimit(log)
	hooks, err := loadTestHooks(getenv, log)
	if err != nil {
		return err
	}
	rocketmq.RouteClientLogs(log.With("component", "rocketmq-client"), slog.LevelWarn)
	epoch := newEpoch()
	log.Info("starting presenced broker", "version", version, "node", cfg.Node, "epoch", epoch)

	life := newLifecycle(log)
	box, err := openOutbox(cfg, log)
	if err != nil {
		return err
	}
	life.add(outboxComponent(box))
	forwarder, err := rocketmq.NewForwarder(outboxSource{box}, rocketmq.ForwarderConfig{
		NameServers:   cfg.RocketMQ.nameServers(),
		Routing:       rocketmq.Routing{Topic: cfg.RocketMQ.Topic, PerGroupTopics: cfg.RocketMQ.PerGroupTopics},
		ProducerGroup: cfg.RocketMQ.ProducerGroup,
		AccessKey:     cfg.RocketMQ.AccessKey,
		SecretKey:     cfg.RocketMQ.SecretKey,
		Log:           log,
	})
	if err != nil {
		return life.abort(err)
	}
	mqttListener, httpListener, certs, front, err := openBrokerListeners(ctx, cfg, life, log)
	if err != nil {
		return life.abort(err)
	}

	reg := prometheus.NewRegistry()
	// Refused connects go to RocketMQ best-effort, beside the outbox and
	// not through it: nothing was acknowledged for them (see refused.go).
	publisher, err := startPublisher(cfg.RocketMQ, life)
	if err != nil {
		return life.abort(err)
	}
	refused := newRefusedForwarder(func(ctx context.Context, batch []presence.RefusedConnect) error {
		return publisher.SendRefused(ctx, cfg.RocketMQ.Topic, batch)
	}, reg, log)
	life.add(refused.component())

	writer := outboxWriter{box}
	reporter := &consumer.NodeReporter{
		Node: cfg.Node, Epoch: epoch, Generation: nodeGeneration(cfg.DataDir, log),
		Lease: cfg.NodeLease, HeartbeatEvery: cfg.HeartbeatEvery, ReconcileEvery: cfg.ReconcileEvery,
		Emit: writer.node, Log: log.With("component", "nodes"), Now: hooks.now,
	}
	brokerConfig, err := newBrokerConfig(cfg, epoch, mqttListener.Addr(), hooks, log)
	if err != nil {
		return life.abort(err)
	}
	if persistence, on, err := openBrokerPersistence(cfg, &brokerConfig, reg, log); err != nil {
		return life.abort(err)
	} else if on {
		life.add(persistence)
	}
	certs.configureBroker(&brokerConfig, cfg.AllowAnonymous)
	front.configureBroker(&brokerConfig, cfg.AllowAnonymous)
	brokerConfig.OnRefused = refused.offer
	broker := mqttbroker.New(brokerConfig, reporter.Stamp(writer.event))
	reporter.OpenChannels = broker.OpenChannels
	kicks := &nodeKicks{node: cfg.Node, broker: broker, log: log.With("component", "kick")}
	control, err := rocketmq.NewControlConsumer(rocketmq.ControlConfig{
		NameServers: cfg.RocketMQ.nameServers(),
		Group:       cfg.RocketMQ.ControlGroup,
		Topic:       cfg.RocketMQ.ControlTopic,
		AccessKey:   cfg.RocketMQ.AccessKey,
		SecretKey:   cfg.RocketMQ.SecretKey,
		Kick:        kicks.kick,
		Now:         hooks.now,
		Log:         log,
	})
	if err != nil {
		return life.abort(err)
	}
	kicks.control = control

	reg.MustRegister(kicks, brokerCollector{stats: broker.Stats}, outboxCollector{box: box}, forwarderCollector{forwarder: forwarder}, certs, front, logs)
	ops := opsServer(func(context.Context) error { return nil }, reg, log)

	life.add(httpComponent(ops, httpListener))
	life.add(forwarderComponent(forwarder, box, log))
	addReporter(life, reporter)
	life.add(certs.component())
	life.add(brokerComponent(broker, mqttListener))
	certs.addMQTTS(life, broker)
	front.addWS(life, broker)
	// Commands act on the broker: they start after it and stop before it.
	life.add(component{name: "rocketmq control consumer", run: control.Run})
	log.Info("listening", append([]any{"mqtt", mqttListener.Addr().String(), "http", httpListener.Addr().String()}, append(certs.listening(), front.listening()...)...)...)
	err = life.run(ctx, cfg.ShutdownWait)
	log.Info("stopped")
	return err
}

// forwarderComponent sends the outbox to RocketMQ. At shutdown it forwards
// what the outbox holds (the tcpcleans of the shutdown among it) until the
// deadline; whatever is left is sent after the next start.
func forwarderComponent(forwarder *rocketmq.Forwarder, box *outbox.Outbox, log *slog.Logger) component {
	return component{
		name: "forwarder",
		run:  forwarder.Run,
		stop: func(ctx context.Context) error {
			if err := forwarder.Shutdown(ctx); err != nil {
				log.Warn("forwarder stopped with events left in the outbox; they are sent after the next start", "err", err, "backlog", box.Stats().BacklogRecords)
			}
			return nil
		},
	}
}

// startPublisher makes the RocketMQ producer of what a process sends
// beside the outbox (broker: refused connects; api: kick commands) and adds
// the component that closes it once what sends through it (added after
// it) has stopped.
func startPublisher(c rocketmqConfig, life *lifecycle) (*rocketmq.Publisher, error) {
	p, err := rocketmq.NewPublisher(rocketmq.PublisherConfig{
		NameServers:   c.nameServers(),
		ProducerGroup: c.ProducerGroup,
		AccessKey:     c.AccessKey,
		SecretKey:     c.SecretKey,
	})
	if err != nil {
		return nil, err
	}
	life.add(component{name: "rocketmq publisher", stop: func(context.Context) error { return p.Close() }})
	return p, nil
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

// forwarderCollector exposes the forwarder's counters.
type forwarderCollector struct{ forwarder *rocketmq.Forwarder }

var (
	forwardedDesc      = prometheus.NewDesc("presenced_forwarder_sent_total", "Events sent to RocketMQ.", nil, nil)
	forwardErrorsDesc  = prometheus.NewDesc("presenced_forwarder_send_errors_total", "Failed sends to RocketMQ (retried).", nil, nil)
	forwarderSkipsDesc = prometheus.NewDesc("presenced_forwarder_skipped_total", "Outbox records that could not be turned into messages.", nil, nil)
)

func (c forwarderCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{forwardedDesc, forwardErrorsDesc, forwarderSkipsDesc} {
		ch <- d
	}
}

func (c forwarderCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(forwardedDesc, prometheus.CounterValue, float64(c.forwarder.Stats.Forwarded.Load()))
	ch <- prometheus.MustNewConstMetric(forwardErrorsDesc, prometheus.CounterValue, float64(c.forwarder.Stats.SendErrors.Load()))
	ch <- prometheus.MustNewConstMetric(forwarderSkipsDesc, prometheus.CounterValue, float64(c.forwarder.Stats.Skipped.Load()))
}
