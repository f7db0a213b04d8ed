package main

import (
	"context"
	"io"
)

// runMigrate applies the database migrations and exits.
func runMigrate(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseServeConfig("migrate", args, getenv, stderr)
	if err != nil {
		return err
	}
	log, _ := newLogger(cfg, stderr)
	db, err := openDatabase(ctx, cfg, log)
	if err != nil {
		return err
	}
	db.Close()
	log.Info("migrations applied")
	return nil
}
