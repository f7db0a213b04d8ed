package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/presenced/presenced/api"
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
	epoch := newEpoch()
	log.Info("starting presenced", "version", version, "node", cfg.Node, "epoch", epoch)

	db, err := openDatabase(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()

	mqttListener, err := net.Listen("tcp", cfg.MQTTAddr)
	if err != nil {
		return fmt.Errorf("listen for MQTT on %s: %w", cfg.MQTTAddr, err)
	}
	httpListener, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		mqttListener.Close()
		return fmt.Errorf("listen for HTTP on %s: %w", cfg.HTTPAddr, err)
	}

	queue := consumer.NewQueue(cfg.QueueLimit)
	applier := consumer.NewApplier(db.apply, nil, log.With("component", "consumer"), time.Now)
	pump := &consumer.Pump{Queue: queue, Applier: applier, BatchSize: cfg.BatchSize}

	broker := mqttbroker.New(mqttbroker.Config{
		Node:           cfg.Node,
		Epoch:          epoch,
		ConnectTimeout: cfg.ConnectTimeout,
		AllowAnonymous: allowAnonymous(cfg.AllowAnonymous, mqttListener.Addr()),
		Logger:         log.With("component", "mqtt"),
	}, queue.Emit)

	httpServer := &http.Server{
		Handler: api.New(api.Config{Logger: log.With("component", "api")}, api.Deps{
			Status:    db,
			Readiness: db,
		}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	// pumpCtx outlives ctx: the pump must drain the tcpclean events of the
	// shutdown. It is cancelled only if the drain takes too long.
	pumpCtx, cancelPump := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelPump()

	pumpDone := make(chan error, 1)
	go func() { pumpDone <- pump.Run(pumpCtx) }()

	var wg sync.WaitGroup
	failed := make(chan error, 2)
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
	if err := broker.Shutdown(shutdownCtx); err != nil {
		log.Error("mqtt shutdown", "err", err)
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
