package test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// TestRetentionPrunesOnlyOldClosedChannels runs serve with a one-hour
// retention, ages one closed channel, an open one and one parked message
// past it straight in the store — the events into a day partition two
// days back — and waits for the retention loop to delete exactly the old
// closed channel and message and to drop that partition: the open
// channel's event is kept (copied forward), and a recently closed channel
// and a recent parked message survive.
func TestRetentionPrunesOnlyOldClosedChannels(t *testing.T) {
	dbURL := pgtest.URL(t)
	p := startServe(t, dbURL, "--retention", "1h", "--rejected-retention", "1h", "--retention-every", "50ms")

	open, _ := rawConnect(t, p.MQTTAddr, "keep-open", 300)
	defer open.Close()
	for _, id := range []string{"aged-closed", "recent-closed"} {
		conn, _ := rawConnect(t, p.MQTTAddr, id, 300)
		conn.Close()
		waitStoredEvents(t, dbURL, id, 2) // connect, tcpclean
	}
	waitStoredEvents(t, dbURL, "keep-open", 1)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer db.Close(ctx)
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := db.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	// The open channel is made old too: age alone never removes it. One
	// statement string is one transaction: the partition appears with its
	// rows, so retention cannot drop it empty first.
	old := time.Now().UTC().AddDate(0, 0, -2).Truncate(24 * time.Hour)
	oldPartition := "events_d" + old.Format("20060102")
	exec(fmt.Sprintf(`CREATE TABLE %s PARTITION OF events FOR VALUES FROM ('%s') TO ('%s');
		UPDATE channels SET closed_at = now() - interval '2 days' WHERE client_id = 'aged-closed';
		UPDATE events SET applied_at = applied_at - interval '2 days', part_day = '%[2]s' WHERE client_id IN ('aged-closed', 'keep-open')`,
		oldPartition, old.Format(time.DateOnly), old.AddDate(0, 0, 1).Format(time.DateOnly)))
	exec(`INSERT INTO rejected_events (source, raw, reason, received_at) VALUES
		('test', 'old', 'aged', now() - interval '2 hours'), ('test', 'new', 'recent', now())`)

	deadline := time.Now().Add(10 * time.Second)
	for {
		var channels, events, rejected int
		var partition bool
		if err := db.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM channels WHERE client_id = 'aged-closed'),
			(SELECT count(*) FROM events WHERE client_id = 'aged-closed'),
			(SELECT count(*) FROM rejected_events WHERE reason = 'aged'),
			to_regclass($1) IS NOT NULL`, oldPartition).Scan(&channels, &events, &rejected, &partition); err != nil {
			t.Fatalf("count aged rows: %v", err)
		}
		if channels == 0 && events == 0 && rejected == 0 && !partition {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: aged closed channel rows %d, its events %d, aged parked messages %d, partition %s there %v; want all gone\n%s",
				channels, events, rejected, oldPartition, partition, p.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := storedEvents(t, dbURL, "recent-closed"); len(got) != 2 {
		t.Fatalf("recently closed channel: %d events stored, want 2 kept", len(got))
	}
	if got := openChannelCount(t, dbURL, "keep-open"); got != 1 {
		t.Fatalf("open channel: %d open, want 1 kept", got)
	}
	if got := storedEvents(t, dbURL, "keep-open"); len(got) != 1 {
		t.Fatalf("open channel: %d events stored, want its connect kept", len(got))
	}
	var recent int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM rejected_events WHERE reason = 'recent'`).Scan(&recent); err != nil || recent != 1 {
		t.Fatalf("recent parked messages: %d (%v), want 1 kept", recent, err)
	}
	p.waitMetric(`presenced_retention_deleted_total{what="channels"}`, 1, 10*time.Second)
	p.waitMetric(`presenced_retention_deleted_total{what="rejected"}`, 1, 10*time.Second)
	p.waitMetric(`presenced_retention_deleted_total{what="partitions"}`, 1, 10*time.Second)
	p.waitMetric(`presenced_retention_kept_events_total`, 1, 10*time.Second)
	if !p.status("keep-open").Online {
		t.Fatal("the open client is not online after retention ran")
	}
}

// ageIntoPartition moves every stored event of clientID into a day
// partition `days` days back (made for it), in one transaction, so that
// retention may drop that day as soon as it next runs.
func ageIntoPartition(t *testing.T, dbURL, clientID string, days int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer db.Close(ctx)
	day := time.Now().UTC().AddDate(0, 0, -days).Truncate(24 * time.Hour)
	name := "events_d" + day.Format("20060102")
	if _, err := db.Exec(ctx, fmt.Sprintf(`CREATE TABLE %s PARTITION OF events FOR VALUES FROM ('%s') TO ('%s');
		UPDATE events SET applied_at = applied_at - interval '%d days', part_day = '%[2]s' WHERE client_id = '%s'`,
		name, day.Format(time.DateOnly), day.AddDate(0, 0, 1).Format(time.DateOnly), days, clientID)); err != nil {
		t.Fatalf("age %s into %s: %v", clientID, name, err)
	}
	return name
}

// TestRetentionUnderChurnAndDatabaseRestartLosesNothing runs retention
// every 100 ms while clients churn and the external database restarts.
// Twice, an open channel's events are aged into an old day partition,
// which retention then drops while Apply writes. Every acknowledged
// connect of the churn is stored with its tcpclean (verifyChurn), and the
// open channel keeps its connect through both drops.
func TestRetentionUnderChurnAndDatabaseRestartLosesNothing(t *testing.T) {
	skipLong(t)
	db := startExternalDB(t)
	p := startServe(t, db.url, "--retention", "1h", "--retention-every", "100ms")
	stopAtCleanup(p, "")
	keep, _ := rawConnect(t, p.MQTTAddr, "keep-open", 300)
	defer keep.Close()
	waitStoredEvents(t, db.url, "keep-open", 1)

	prefix := churnPrefix(t, "r")
	ch := startChurn(t, churnConfig{Addr: p.MQTTAddr, Prefix: prefix})
	ch.watch = p
	ch.waitMoreAcked(300, 30*time.Second)
	first := ageIntoPartition(t, db.url, "keep-open", 2)
	p.waitMetric(`presenced_retention_deleted_total{what="partitions"}`, 1, 30*time.Second)
	ch.waitMoreAcked(300, 30*time.Second)

	second := ageIntoPartition(t, db.url, "keep-open", 3)
	stoppedAt := time.Now()
	db.stop(t)
	ch.waitMoreAcked(200, 30*time.Second) // acknowledged from the outbox alone
	db.start(t)
	waitRecovered(t, p, stoppedAt, 60*time.Second, nil)
	p.waitMetric(`presenced_retention_deleted_total{what="partitions"}`, 2, 30*time.Second)
	ch.waitMoreAcked(300, 30*time.Second)
	res := ch.Stop()
	verifyChurn(t, p, db.dbURL, prefix, res, 60*time.Second)

	if got := storedEvents(t, db.url, "keep-open"); len(got) != 1 || got[0].EventType != "connect" {
		t.Fatalf("the open channel after two partition drops: %+v, want its connect", got)
	}
	if got := openChannelCount(t, db.url, "keep-open"); got != 1 {
		t.Fatalf("the open channel: %d open, want 1", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, db.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var left int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_class WHERE relname IN ($1, $2)`, first, second).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d of the aged partitions %s, %s remain (%v)", left, first, second, err)
	}
}
