package pgstore_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/presenced/presenced/migrations"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

func openUnmigrated(t *testing.T) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(ctx, pgtest.URL(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestMigrateIdempotentAndConcurrent(t *testing.T) {
	url := pgtest.URL(t)
	var stores []*pgstore.Store
	for range 3 {
		s, err := pgstore.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		stores = append(stores, s)
	}
	if err := stores[0].Ready(ctx); presence.ErrorCode(err) != presence.EUNAVAILABLE {
		t.Fatalf("Ready before migrating: %v, want EUNAVAILABLE", err)
	}
	// Several processes starting at once, each migrating twice.
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(stores))
	for _, s := range stores {
		wg.Go(func() {
			errs <- s.Migrate(ctx)
			errs <- s.Migrate(ctx)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Migrate: %v", err)
		}
	}
	if err := stores[0].Ready(ctx); err != nil {
		t.Fatalf("Ready after migrating: %v", err)
	}
	version, err := stores[1].SchemaVersion(ctx)
	if err != nil || version != migrations.Latest() {
		t.Fatalf("SchemaVersion = %d, %v; want %d", version, err, migrations.Latest())
	}
	var rows int
	if err := stores[0].Pool().QueryRow(ctx, "SELECT count(*) FROM schema_migrations").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	all, _ := migrations.All()
	if rows != len(all) {
		t.Fatalf("schema_migrations has %d rows, want %d", rows, len(all))
	}
}

func TestMigrateRefusesNewerDatabase(t *testing.T) {
	s := openUnmigrated(t)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES (9999, 'future')"); err != nil {
		t.Fatal(err)
	}
	err := s.Migrate(ctx)
	if err == nil || !strings.Contains(err.Error(), "newer than this presenced") {
		t.Fatalf("Migrate on a newer database: %v, want a 'newer' error", err)
	}
	if err := s.Ready(ctx); presence.ErrorCode(err) != presence.EUNAVAILABLE || !strings.Contains(err.Error(), "upgrade presenced") {
		t.Fatalf("Ready on a newer database: %v", err)
	}
	// The migration lock was released despite the failure.
	if err := s.Migrate(ctx); err == nil {
		t.Fatal("second Migrate on a newer database succeeded")
	}
}

func TestQueriesBeforeMigrateAreUnavailable(t *testing.T) {
	s := openUnmigrated(t)
	_, err := s.Online(ctx, "x")
	if presence.ErrorCode(err) != presence.EUNAVAILABLE || !strings.Contains(presence.ErrorMessage(err), "presenced migrate") {
		t.Fatalf("Online on an empty database: %v (%q)", err, presence.ErrorMessage(err))
	}
}
