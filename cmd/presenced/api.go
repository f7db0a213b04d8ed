package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
)

// runAPI runs the HTTP API alone ("presenced api") against a shared
// database, for scaling reads out: its view follows the store's change
// feed exactly as in "serve", so every API process gives the same answer
// within milliseconds of a commit. POST /events works here too.
func runAPI(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseServeConfig("api", args, getenv, stderr)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	log.Info("starting presenced api", "version", version)
	db, err := openDatabase(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()
	listener, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen for HTTP on %s: %w", cfg.HTTPAddr, err)
	}
	web := newHTTPAPI(cfg, db, log)

	feedCtx, stopFeed := context.WithCancel(context.WithoutCancel(ctx))
	defer stopFeed()
	var wg sync.WaitGroup
	failed := make(chan error, 3)
	serve := func(name string, fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ignoreClosed(fn()); err != nil {
				failed <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	serve("change feed", func() error { return web.runFollower(feedCtx) })
	// Every process with a store checks node leases: the clients of a
	// crashed broker must turn unknown, then offline, even when no broker
	// or consumer of that node runs any more.
	serve("lease monitor", func() error { return leaseMonitor(db.store, cfg, "", log).Run(feedCtx) })
	serve("http server", func() error { return web.server.Serve(listener) })
	log.Info("listening", "http", listener.Addr().String())

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "cause", context.Cause(ctx))
	case runErr = <-failed:
		log.Error("component failed; shutting down", "err", runErr)
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownWait)
	defer cancel()
	if err := web.server.Shutdown(shutdownCtx); err != nil {
		log.Error("http shutdown", "err", err)
	}
	stopFeed()
	wg.Wait()
	log.Info("stopped")
	return runErr
}
