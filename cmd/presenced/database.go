package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore"
	"github.com/presenced/presenced/presence/pgstore/pglocal"
)

// database is the store, opened and migrated, and the private PostgreSQL
// cluster behind it when presenced owns one.
type database struct {
	store   *pgstore.Store
	cluster *pglocal.Cluster // nil with --database-url
	pgDir   string           // the cluster's directory under --data-dir
	log     *slog.Logger

	ready readinessCache
}

// readyFor is how long a readiness answer is reused: /readyz is open to
// anyone who reaches the port, and each check is a database query.
const readyFor = time.Second

// readinessCache holds the last readiness answer; checks are one at a time.
type readinessCache struct {
	mu  sync.Mutex
	now func() time.Time // time.Now unless a test sets it
	at  time.Time
	err error
}

// openDatabase connects to --database-url, or starts the private cluster
// under --data-dir when none is given, and applies the migrations.
func openDatabase(ctx context.Context, cfg config, log *slog.Logger) (*database, error) {
	d := &database{log: log}
	url := cfg.DatabaseURL
	if url == "" {
		d.pgDir = filepath.Join(cfg.DataDir, "postgres")
		cluster, err := pglocal.Start(ctx, pglocal.Options{
			DataDir: d.pgDir,
			Logger:  log,
		})
		if err != nil {
			return nil, fmt.Errorf("start private PostgreSQL (or set --database-url / PRESENCE_DATABASE_URL): %w", err)
		}
		d.cluster = cluster
		url = cluster.URL()
		log.Info("started private PostgreSQL", "data_dir", d.pgDir)
	}
	store, err := pgstore.Open(ctx, url)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("open database: %w", err)
	}
	d.store = store
	if err := store.Migrate(ctx); err != nil {
		d.Close()
		return nil, fmt.Errorf("migrate database: %w", err)
	}
	return d, nil
}

// Close closes the pool and stops the owned cluster, waiting at most 30 s.
func (d *database) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d.close(ctx)
}

// close closes the pool and stops the owned cluster within ctx's deadline.
// A database that does not answer (stopped, cut off) must not hold the
// process past its shutdown deadline: closing a pool waits for each
// connection's cancel request, which an unreachable server never answers,
// so the pool is left to close in the background; the private cluster is
// then stopped all the same (immediately, once the deadline has passed).
func (d *database) close(ctx context.Context) {
	if d.store != nil {
		closed := make(chan struct{})
		go func() {
			d.store.Close()
			close(closed)
		}()
		select {
		case <-closed:
		case <-ctx.Done():
			d.log.Warn("database connections did not close by the shutdown deadline; leaving them")
		}
	}
	if d.cluster != nil {
		if err := d.cluster.Stop(ctx); err != nil {
			d.log.Error("stop private PostgreSQL", "err", err)
		}
	}
}

// apply is the consumer's ApplyFunc.
func (d *database) apply(ctx context.Context, events []presence.Event) ([]presence.StoredEvent, error) {
	result, err := d.store.Apply(ctx, events)
	return result.Applied, err
}

// Ready reports whether the database is reachable and migrated; while the
// private PostgreSQL is down it says why (restarting, waiting for disk
// space).
func (d *database) Ready(ctx context.Context) error {
	c := &d.ready
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	if !c.at.IsZero() && now().Sub(c.at) < readyFor {
		return c.err
	}
	err := d.check(ctx)
	if ctx.Err() == nil { // a caller that gave up says nothing of the database
		c.at, c.err = now(), err
	}
	return err
}

// check asks the private cluster's supervisor and the store.
func (d *database) check(ctx context.Context) error {
	if d.cluster != nil {
		if h := d.cluster.Health(); !h.Running {
			return presence.Errorf(presence.EUNAVAILABLE, "%s", h.Reason)
		}
	}
	return d.store.Ready(ctx)
}

// component is the database as the lifecycle runs it: the private
// PostgreSQL is supervised for as long as the process runs — restarted
// when it dies, and the process stopped with the reason when it cannot be
// — and the database is closed last of all.
func (d *database) component(cfg config) component {
	c := component{name: "database", stop: func(ctx context.Context) error { d.close(ctx); return nil }}
	if d.cluster != nil {
		opts := pglocal.SuperviseOptions{
			MaxAttempts:  cfg.Durability.PostgresRestartAttempts,
			MinFreeBytes: uint64(cfg.Durability.diskReserve(cfg.DataDir)),
		}
		c.run = func(ctx context.Context) error { return d.cluster.Supervise(ctx, opts) }
	}
	return c
}

// localDirs are the directories of the private PostgreSQL, whose
// filesystem must keep the disk reserve too; none with --database-url.
func (d *database) localDirs() []string {
	if d.cluster == nil {
		return nil
	}
	return []string{d.pgDir}
}

// registerMetrics exposes the store's takeover holds and the supervision
// of the private PostgreSQL.
func (d *database) registerMetrics(reg prometheus.Registerer) {
	takeovers := func(v func(pgstore.TakeoverStats) uint64) func() float64 {
		return func() float64 { return float64(v(d.store.TakeoverStats())) }
	}
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "presenced_takeovers_held_total",
			Help: "Takeover tcpcleans held back until their successor's connect was stored (the client never shows offline).",
		}, takeovers(func(s pgstore.TakeoverStats) uint64 { return s.Held })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "presenced_takeovers_released_total",
			Help:        "Held takeover tcpcleans applied: by=successor when the successor's first event was stored, by=age after the hold bound without one.",
			ConstLabels: prometheus.Labels{"by": "successor"},
		}, takeovers(func(s pgstore.TakeoverStats) uint64 { return s.Released })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "presenced_takeovers_released_total",
			Help:        "Held takeover tcpcleans applied: by=successor when the successor's first event was stored, by=age after the hold bound without one.",
			ConstLabels: prometheus.Labels{"by": "age"},
		}, takeovers(func(s pgstore.TakeoverStats) uint64 { return s.ReleasedByAge })),
	)
	if d.cluster == nil {
		return
	}
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "presenced_postgres_restarts_total",
			Help: "Restarts of the private PostgreSQL after it died.",
		}, func() float64 { return float64(d.cluster.Health().Restarts) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "presenced_postgres_up",
			Help: "1 while the private PostgreSQL server runs.",
		}, func() float64 {
			if d.cluster.Health().Running {
				return 1
			}
			return 0
		}),
	)
}
