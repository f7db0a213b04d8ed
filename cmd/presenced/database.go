package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore"
	"github.com/presenced/presenced/presence/pgstore/pglocal"
)

// database is the store, opened and migrated, and the private PostgreSQL
// cluster behind it when presenced owns one.
type database struct {
	store   *pgstore.Store
	cluster *pglocal.Cluster // nil with --database-url
	log     *slog.Logger
}

// openDatabase connects to --database-url, or starts the private cluster
// under --data-dir when none is given, and applies the migrations.
func openDatabase(ctx context.Context, cfg config, log *slog.Logger) (*database, error) {
	d := &database{log: log}
	url := cfg.DatabaseURL
	if url == "" {
		cluster, err := pglocal.Start(ctx, pglocal.Options{
			DataDir: filepath.Join(cfg.DataDir, "postgres"),
			Logger:  log,
		})
		if err != nil {
			return nil, fmt.Errorf("start private PostgreSQL (or set --database-url / PRESENCE_DATABASE_URL): %w", err)
		}
		d.cluster = cluster
		url = cluster.URL()
		log.Info("started private PostgreSQL", "data_dir", filepath.Join(cfg.DataDir, "postgres"))
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

// Close closes the pool and stops the owned cluster.
func (d *database) Close() {
	if d.store != nil {
		d.store.Close()
	}
	if d.cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
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

// Ingest is the API's EventIngester: POST /events goes through the same
// idempotent Apply as the consumer.
func (d *database) Ingest(ctx context.Context, events []presence.Event) ([]presence.StoredEvent, error) {
	return d.apply(ctx, events)
}

// Ready reports whether the database is reachable and migrated.
func (d *database) Ready(ctx context.Context) error { return d.store.Ready(ctx) }
