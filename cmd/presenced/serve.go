package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/presenced/presenced/consumer"
	"github.com/presenced/presenced/mqttbroker"
)

// runServe runs broker, in-process transport, consumer and API in one
// process until ctx ends, then shuts down gracefully: stop accepting MQTT
// connections, close them (their tcpclean events enter the queue), drain the
// queue into the store, stop HTTP, stop the owned PostgreSQL.
func runServe(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseServeConfig("serve", args, getenv, stderr)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	hooks, err := loadTestHooks(getenv, log)
	if err != nil {
		return err
	}
	epoch := newEpoch()
	log.Info("starting presenced", "version", version, "node", cfg.Node, "epoch", epoch)

	db, err := openDatabase(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()

	mqttListener, err := mqttbroker.Listen(ctx, cfg.MQTTAddr)
	if err != nil {
		return fmt.Errorf("listen for MQTT on %s: %w", cfg.MQTTAddr, err)
	}
	httpListener, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		mqttListener.Close()
		return fmt.Errorf("listen for HTTP on %s: %w", cfg.HTTPAddr, err)
	}

	queue := consumer.NewQueue(cfg.QueueLimit)
	web := newHTTPAPI(cfg, db, log)
	pipeline := newConsumerMetrics(web.registry)
	applier := consumer.NewApplier(pipeline.observeBatches(db.apply), nil, log.With("component", "consumer"), time.Now)
	pipeline.register(applier, queue)
	nodeApplier := consumer.NewNodeApplier(db.store.ApplyNodeEvent, nil, log.With("component", "nodes"))
	pump := &consumer.Pump{Queue: queue, Applier: applier, Nodes: nodeApplier, BatchSize: cfg.BatchSize}

	// The reporter numbers every lifecycle event and reports this node's
	// liveness and channel set through the same queue (issue: stale presence
	// when a broker dies).
	reporter := &consumer.NodeReporter{
		Node: cfg.Node, Epoch: epoch, Generation: nodeGeneration(cfg.DataDir, log),
		Lease: cfg.NodeLease, HeartbeatEvery: cfg.HeartbeatEvery, ReconcileEvery: cfg.ReconcileEvery,
		Emit: queue.EmitNode, Log: log.With("component", "nodes"), Now: hooks.now,
	}
	brokerConfig, err := newBrokerConfig(cfg, epoch, mqttListener.Addr(), hooks, log)
	if err != nil {
		mqttListener.Close()
		httpListener.Close()
		return err
	}
	broker := mqttbroker.New(brokerConfig, reporter.Stamp(pipeline.countEmitted(queue.Emit)))
	reporter.OpenChannels = broker.OpenChannels

	web.registry.MustRegister(brokerCollector{stats: broker.Stats})
	httpServer := web.server

	// pumpCtx outlives ctx: the pump must drain the tcpclean events of the
	// shutdown. It is cancelled only if the drain takes too long.
	pumpCtx, cancelPump := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelPump()

	pumpDone := make(chan error, 1)
	go func() { pumpDone <- pump.Run(pumpCtx) }()
	// Announce the new epoch before accepting clients: the channels a
	// previous process of this node left open are fenced first.
	if err := reporter.Start(); err != nil {
		return fmt.Errorf("announce node start: %w", err)
	}

	var wg sync.WaitGroup
	failed := make(chan error, 5)
	serve := func(name string, fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ignoreClosed(fn()); err != nil {
				failed <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	serve("mqtt server", func() error { return broker.Serve(mqttListener) })
	nodesCtx, stopNodes := context.WithCancel(ctx)
	defer stopNodes()
	serve("node reporter", func() error { return reporter.Run(nodesCtx) })
	serve("lease monitor", func() error { return leaseMonitor(db.store, cfg, cfg.Node, log).Run(nodesCtx) })
	// The view follows the store's change feed until HTTP has stopped.
	feedCtx, stopFeed := context.WithCancel(context.WithoutCancel(ctx))
	defer stopFeed()
	serve("change feed", func() error { return web.runFollower(feedCtx) })
	serve("http server", func() error { return httpServer.Serve(httpListener) })
	log.Info("listening", "mqtt", mqttListener.Addr().String(), "http", httpListener.Addr().String())

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "cause", context.Cause(ctx))
	case runErr = <-failed:
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
	// The broker has handed every tcpclean to the queue; drain it into the
	// store before HTTP stops, so readiness stays truthful meanwhile.
	queue.Close()
	select {
	case <-pumpDone:
	case <-shutdownCtx.Done():
		log.Error("shutdown timed out with events not stored", "events", queue.Len())
		cancelPump()
		<-pumpDone
	}
	if err := httpServer.Shutdown(shutdownCtx); err != nil {
		log.Error("http shutdown", "err", err)
	}
	stopFeed()
	wg.Wait()
	log.Info("stopped", "events_applied", applier.Stats.Applied.Load())
	return runErr
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
