package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/presenced/presenced/consumer"
	"github.com/presenced/presenced/mqttbroker"
)

// runServe runs broker, durable outbox, consumer and API in one process
// until ctx ends. Every lifecycle event is on disk in the outbox before the
// broker acts on it (a CONNACK only once the connect is durable); the
// consumer applies the outbox to the store and acknowledges what
// committed, so a crash of anything — presenced, PostgreSQL — loses
// nothing, and a restart applies what was left. Shutdown runs in reverse:
// the broker closes its connections (their tcpcleans go to the outbox),
// the consumer drains the outbox into the store, HTTP stops, the private
// PostgreSQL stops last.
func runServe(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseServeConfig("serve", args, getenv, stderr)
	if err != nil {
		return err
	}
	// Refused before anything starts: an open API off loopback lets anyone
	// forge presence (see checkAccess).
	if err := cfg.API.checkAccess(cfg.HTTPAddr); err != nil {
		return err
	}
	log, logs := newLogger(cfg, stderr)
	raiseFileLimit(log)
	hooks, err := loadTestHooks(getenv, log)
	if err != nil {
		return err
	}
	epoch := newEpoch()
	log.Info("starting presenced", "version", version, "node", cfg.Node, "epoch", epoch)

	life := newLifecycle(log)
	db, err := openDatabase(ctx, cfg, log)
	if err != nil {
		return err
	}
	life.add(db.component(cfg))
	box, err := openOutbox(cfg, log, db.localDirs()...)
	if err != nil {
		return life.abort(err)
	}
	life.add(outboxComponent(box))
	mqttListener, httpListener, certs, front, err := openBrokerListeners(ctx, cfg, life, log)
	if err != nil {
		return life.abort(err)
	}
	if err := cfg.API.checkAccess(httpListener.Addr().String()); err != nil {
		return life.abort(err) // the address bound, not resolved again: a host name's answer may change
	}

	late := &lateBroker{node: cfg.Node}
	web := newHTTPAPI(cfg, db, late, late, log)
	pipeline := newConsumerMetrics(web.registry)
	applier := consumer.NewApplier(pipeline.observeBatches(db.apply), nil, log.With("component", "consumer"), time.Now)
	pipeline.register(applier)
	pump := &consumer.Pump{
		Source:    outboxEntries{box},
		Applier:   applier,
		Nodes:     consumer.NewNodeApplier(db.store.ApplyNodeEvent, nil, log.With("component", "nodes")),
		Reject:    db.store.RejectEvent,
		BatchSize: cfg.BatchSize,
		Writers:   cfg.StoreWriters,
		Log:       log.With("component", "consumer"),
	}
	web.registry.MustRegister(outboxCollector{box: box}, logs)
	db.registerMetrics(web.registry)

	// The reporter numbers every lifecycle event and reports this node's
	// liveness and channel set through the same outbox (stale presence
	// when a broker dies).
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
	if persistence, on, err := openBrokerPersistence(cfg, &brokerConfig, web.registry, log); err != nil {
		return life.abort(err)
	} else if on {
		life.add(persistence)
	}
	certs.configureBroker(&brokerConfig, cfg.AllowAnonymous)
	front.configureBroker(&brokerConfig, cfg.AllowAnonymous)
	refused := newRefusedRecorder(db.store, web.registry, log)
	brokerConfig.OnRefused = refused.offer
	broker := mqttbroker.New(brokerConfig, reporter.Stamp(pipeline.countEmitted(writer.event)))
	late.broker.Store(broker)
	reporter.OpenChannels = broker.OpenChannels
	web.registry.MustRegister(brokerCollector{stats: broker.Stats}, certs, front)

	// The view follows the store's change feed until HTTP has stopped.
	life.add(component{name: "change feed", run: web.runFollower})
	life.add(refused.component())
	life.add(httpComponent(web.server, httpListener))
	life.add(pumpComponent(pump, box, log))
	life.add(component{name: "lease monitor", run: leaseMonitor(db.store, cfg, cfg.Node, log).Run})
	life.add(retention(db.store, cfg.Retention, time.Now, web.registry, log))
	// Webhooks (webhookconfig.go): one process at a time delivers each hook.
	if webhooks := webhookComponent(cfg.Webhooks, db.store, cfg.Node+"/"+epoch, web.registry, log); webhooks != nil {
		life.add(*webhooks)
	}
	// The new epoch is announced before clients are accepted, so the
	// channels a previous process of this node left open are fenced first.
	addReporter(life, reporter)
	life.add(certs.component())
	life.add(brokerComponent(broker, mqttListener))
	certs.addMQTTS(life, broker)
	front.addWS(life, broker)
	log.Info("listening", append([]any{"mqtt", mqttListener.Addr().String(), "http", httpListener.Addr().String()}, append(certs.listening(), front.listening()...)...)...)
	err = life.run(ctx, cfg.ShutdownWait)
	log.Info("stopped", "events_applied", applier.Stats.Applied.Load())
	return err
}

// httpComponent serves HTTP on l; stopping it shuts the server down
// gracefully (open streams are told to end).
func httpComponent(server *http.Server, l net.Listener) component {
	return component{
		name: "http server",
		run:  func(context.Context) error { return server.Serve(l) },
		stop: server.Shutdown,
	}
}

// brokerComponent serves MQTT on l; stopping it closes every connection,
// each one's tcpclean handed to the sink before Shutdown returns.
func brokerComponent(broker *mqttbroker.Server, l net.Listener) component {
	return component{
		name: "mqtt server",
		run:  func(context.Context) error { return broker.Serve(l) },
		stop: broker.Shutdown,
	}
}

// addReporter adds the node reporter as two components: one announces
// this node's start and, at shutdown, its stop; the other heartbeats and
// reports the node's channels meanwhile. Stopped in reverse, the reports
// end first and the stop is announced last, after the broker (added
// later, stopped earlier) has closed every connection and emitted its
// tcpclean.
func addReporter(life *lifecycle, reporter *consumer.NodeReporter) {
	life.add(component{
		name:  "node announcements",
		start: reporter.Start,
		stop:  func(context.Context) error { return reporter.Stop() },
	})
	life.add(component{name: "node reporter", run: reporter.Run})
}

// ignoreClosed treats the error that a server returns after a graceful
// shutdown as success.
func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, mqttbroker.ErrServerClosed) {
		return nil
	}
	return err
}

// allowAnonymous resolves --allow-anonymous: "auto" allows clients without
// credentials only while the MQTT listener is on loopback.
func allowAnonymous(setting string, addr net.Addr) bool {
	switch setting {
	case "true":
		return true
	case "false":
		return false
	}
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// newEpoch returns a fresh id for this process start (128 random bits).
func newEpoch() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
