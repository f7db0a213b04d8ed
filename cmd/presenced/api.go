package main

import (
	"context"
	"io"
	"time"
)

// runAPI runs the HTTP API alone ("presenced api") against a shared
// database, for scaling reads out: its view follows the store's change
// feed exactly as in "serve", so every API process gives the same answer
// within milliseconds of a commit. POST /events works here too; with
// --rocketmq-namesrv, DELETE /clients/{id}/connection reaches the broker
// nodes through RocketMQ's control topic.
func runAPI(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseServeConfig("api", args, getenv, stderr)
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
	log.Info("starting presenced api", "version", version)
	life := newLifecycle(log)
	db, err := openDatabase(ctx, cfg, log)
	if err != nil {
		return err
	}
	life.add(db.component(cfg))
	listener, certs, err := listenHTTP(cfg, life, log)
	if err != nil {
		return life.abort(err)
	}
	if err := cfg.API.checkAccess(listener.Addr().String()); err != nil {
		return life.abort(err) // the address bound, not resolved again: a host name's answer may change
	}
	kicker, err := newAPIKicker(cfg, db, life)
	if err != nil {
		return life.abort(err)
	}
	web := newHTTPAPI(cfg, db, kicker, nil, log)
	db.registerMetrics(web.registry)
	web.registry.MustRegister(certs, logs)
	life.add(certs.component())

	life.add(component{name: "change feed", run: web.runFollower})
	// Every process with a store checks node leases: the clients of a
	// crashed broker must turn unknown, then offline, even when no broker
	// or consumer of that node runs any more.
	life.add(component{name: "lease monitor", run: leaseMonitor(db.store, cfg, "", log).Run})
	life.add(retention(db.store, cfg.Retention, time.Now, web.registry, log))
	// Webhooks (webhookconfig.go): one process at a time delivers each hook.
	if webhooks := webhookComponent(cfg.Webhooks, db.store, cfg.Node+"/api/"+newEpoch(), web.registry, log); webhooks != nil {
		life.add(*webhooks)
	}
	life.add(httpComponent(web.server, listener))
	log.Info("listening", "http", listener.Addr().String())
	err = life.run(ctx, cfg.ShutdownWait)
	log.Info("stopped")
	return err
}
