package pgstore_test

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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

// migrateUpTo applies the migrations up to version as Migrate would have
// then, for tests of upgrades from that version.
func migrateUpTo(t *testing.T, s *pgstore.Store, version int) {
	t.Helper()
	all, err := migrations.All()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, `CREATE TABLE schema_migrations (
		version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	for _, m := range all[:version] {
		if _, err := s.Pool().Exec(ctx, m.SQL); err != nil {
			t.Fatalf("apply %04d_%s: %v", m.Version, m.Name, err)
		}
		if _, err := s.Pool().Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
			t.Fatal(err)
		}
	}
}

// storeLegacyEvents stores, with the columns every schema version has,
// what Apply would have: b-client connected on ch-2; B-client connected on
// ch-1 and closed it.
func storeLegacyEvents(t *testing.T, s *pgstore.Store) {
	t.Helper()
	if _, err := s.Pool().Exec(ctx, `
		INSERT INTO events (channel_id, event_type, client_id, time) VALUES
			('ch-2', 'connect', 'b-client', 1), ('ch-1', 'connect', 'B-client', 2), ('ch-1', 'tcpclean', 'B-client', 3);
		INSERT INTO channels (channel_id, client_id, connect_at, tcpclean_at, has_connect, has_tcpclean, first_seq, last_seq, closed_at) VALUES
			('ch-2', 'b-client', 1, NULL, true, false, 1, 1, NULL), ('ch-1', 'B-client', 2, 3, true, true, 2, 3, now())`); err != nil {
		t.Fatalf("store events at an old schema version: %v", err)
	}
}

// TestUpgradeToByteOrderIdentifiers applies migrations 1–4, stores events,
// then migrates to the latest: the events survive, and every identifier
// column compares as bytes (collation "C"), whatever the database's locale.
func TestUpgradeToByteOrderIdentifiers(t *testing.T) {
	s := openUnmigrated(t)
	migrateUpTo(t, s, 4)
	storeLegacyEvents(t, s)
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate from version 4: %v", err)
	}
	var notC []string
	rows, _ := s.Pool().Query(ctx, `SELECT table_name || '.' || column_name FROM information_schema.columns
		WHERE table_schema = current_schema()
		  AND (table_name, column_name) IN (('events', 'channel_id'), ('events', 'event_type'), ('events', 'client_id'),
		       ('events', 'node'), ('events', 'epoch'), ('channels', 'channel_id'), ('channels', 'client_id'),
		       ('channels', 'node'), ('channels', 'epoch'), ('nodes', 'node'), ('nodes', 'epoch'),
		       ('node_epochs', 'node'), ('node_epochs', 'epoch'))
		  AND collation_name IS DISTINCT FROM 'C'`)
	var col string
	if _, err := pgx.ForEachRow(rows, []any{&col}, func() error { notC = append(notC, col); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(notC) > 0 {
		t.Fatalf("identifier columns not in collation C after migrating: %v", notC)
	}
	// Byte order: upper case before lower case, unlike most locales.
	var first string
	if err := s.Pool().QueryRow(ctx, "SELECT client_id FROM channels ORDER BY client_id LIMIT 1").Scan(&first); err != nil || first != "B-client" {
		t.Fatalf("first client id in order = %q, %v; want B-client", first, err)
	}
	st, err := s.Online(ctx, "b-client")
	if err != nil || !st.Online {
		t.Fatalf("Online(b-client) after the upgrade = %+v, %v", st, err)
	}
	if st, err := s.Online(ctx, "B-client"); err != nil || st.Online {
		t.Fatalf("Online(B-client) after the upgrade = %+v, %v", st, err)
	}
}

// TestUpgradeRecordsEventSources applies migrations 1–5, stores events,
// then migrates to the latest: the old events read source "" (not
// recorded), new ones name their path.
func TestUpgradeRecordsEventSources(t *testing.T) {
	s := openUnmigrated(t)
	migrateUpTo(t, s, 5)
	storeLegacyEvents(t, s)
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate from version 5: %v", err)
	}
	if got := sources(t, s, "ch-1"); len(got) != 2 || got[presence.EventConnect] != "" || got[presence.EventTCPClean] != "" {
		t.Fatalf("sources of events stored before version 6: %v, want \"\"", got)
	}
	mustApply(t, s, ev("b-client", "ch-2", presence.EventTCPClean, 4))
	hook := ev("w", "ch-w", presence.EventConnect, 5)
	hook.Node, hook.Epoch = "", ""
	mustIngest(t, s, hook)
	if got := sources(t, s, "ch-2"); got[presence.EventConnect] != "" || got[presence.EventTCPClean] != "broker" {
		t.Fatalf("sources of ch-2: %v", got)
	}
	if got := sources(t, s, "ch-w"); got[presence.EventConnect] != "api" {
		t.Fatalf("sources of ch-w: %v", got)
	}
	if st := mustOnline(t, s, "b-client"); st.Online {
		t.Fatalf("b-client after its tcpclean: %+v", st)
	}
}

// TestUpgradeToDayPartitions migrates a populated version-5 store to the
// latest: every event keeps its seq, lands in the partition of the UTC day
// it was applied, the default partition stays empty, redelivered events
// are still absorbed as duplicates, and new events continue the seq.
func TestUpgradeToDayPartitions(t *testing.T) {
	s := openUnmigrated(t)
	migrateUpTo(t, s, 5)
	storeLegacyEvents(t, s)
	// 3,000 more events of 1,000 closed channels, applied over the last
	// three days.
	if _, err := s.Pool().Exec(ctx, `
		INSERT INTO events (channel_id, event_type, client_id, time, applied_at)
		SELECT 'old-' || i, t, 'old-client-' || (i % 100), i, now() - (i % 3) * interval '1 day'
		FROM generate_series(1, 1000) i, unnest(ARRAY['connect', 'disconnect', 'tcpclean']) t;
		INSERT INTO channels (channel_id, client_id, connect_at, disconnect_at, tcpclean_at, has_connect, has_disconnect, has_tcpclean,
		                      first_seq, last_seq, closed_at)
		SELECT 'old-' || i, 'old-client-' || (i % 100), i, i, i, true, true, true, 0, 0, now() - (i % 3) * interval '1 day'
		FROM generate_series(1, 1000) i`); err != nil {
		t.Fatal(err)
	}
	type row struct {
		Seq     int64
		Channel string
		Type    string
		Day     time.Time
	}
	read := func(sql string) []row {
		rows, _ := s.Pool().Query(ctx, sql)
		got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	before := read(`SELECT seq, channel_id, event_type, (applied_at AT TIME ZONE 'UTC')::date FROM events ORDER BY seq`)
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate from version 5: %v", err)
	}
	after := read(`SELECT seq, channel_id, event_type, part_day FROM events ORDER BY seq`)
	if !slices.Equal(before, after) || len(after) != 3003 {
		t.Fatalf("events after the upgrade differ: %d before, %d after", len(before), len(after))
	}
	var inDefault, partitions int
	_ = s.Pool().QueryRow(ctx, "SELECT count(*) FROM events_default").Scan(&inDefault)
	_ = s.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass`).Scan(&partitions)
	if inDefault != 0 || partitions < 3+3+1 {
		t.Fatalf("%d events in the default partition, %d partitions", inDefault, partitions)
	}
	// A redelivery of a stored event is a duplicate; a new one gets a
	// seq after every migrated one.
	res, err := s.Apply(ctx, []presence.Event{ev("B-client", "ch-1", presence.EventTCPClean, 3), ev("n", "new", presence.EventConnect, 9)})
	if err != nil || len(res.Applied) != 1 || res.Duplicates != 1 || res.Applied[0].Seq <= after[len(after)-1].Seq {
		t.Fatalf("Apply after the upgrade: %+v, %v", res, err)
	}
}
