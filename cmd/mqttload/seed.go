package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/presenced/presenced/presence/pgstore"
)

// seedChunkSQL inserts the channels and events of clients $1..$2-1 in one
// statement, generated in the database (generate_series), so a million
// channels take seconds rather than a million round trips. Client c gets
// $3 channels an hour apart; its newest is open (connect only), the others
// closed (connect, disconnect, tcpclean). Event seqs are assigned from $4 so
// that channels.first_seq/last_seq agree with events, as Apply would leave
// them.
const seedChunkSQL = `
WITH ch AS (
    SELECT c, k, $5 || c AS client_id, md5($5 || c || '/' || k) AS channel_id, k = $3 - 1 AS open,
           $6::bigint - ($3 - k) * 3600000 AS t0, $4::bigint + (c::bigint * $3 + k) * 3 AS s0
    FROM generate_series($1::int, $2::int - 1) c, generate_series(0, $3::int - 1) k
), ev AS (
    INSERT INTO events (seq, channel_id, event_type, client_id, time, client_ip, node, epoch, reason)
    SELECT s0 + t.i, channel_id, t.typ, client_id, t0 + t.i * 1000, '127.0.0.1:' || (10000 + k), 'seed', 'seed-epoch',
           CASE WHEN t.typ = 'tcpclean' THEN 'client_closed' ELSE '' END
    FROM ch CROSS JOIN LATERAL (VALUES (0, 'connect'), (1, 'disconnect'), (2, 'tcpclean')) t(i, typ)
    WHERE NOT ch.open OR t.i = 0
    ON CONFLICT DO NOTHING
)
INSERT INTO channels (channel_id, client_id, client_ip, node, epoch, connect_at, disconnect_at, tcpclean_at,
                      has_connect, has_disconnect, has_tcpclean, reason, first_seq, last_seq, closed_at)
SELECT channel_id, client_id, '127.0.0.1:' || (10000 + k), 'seed', 'seed-epoch', t0,
       CASE WHEN open THEN NULL ELSE t0 + 1000 END, CASE WHEN open THEN NULL ELSE t0 + 2000 END,
       true, NOT open, NOT open, CASE WHEN open THEN NULL ELSE 'client_closed' END,
       s0, CASE WHEN open THEN s0 ELSE s0 + 2 END, CASE WHEN open THEN NULL ELSE now() END
FROM ch
ON CONFLICT DO NOTHING`

// seed fills a presenced database with known clients and stored channels
// for benchmarks: -clients clients with -channels channels in all, one
// open channel per client.
func seed(ctx context.Context, fs *flag.FlagSet, args []string, out io.Writer) error {
	dbURL := fs.String("database-url", "", "PostgreSQL URL of the presenced database (loopback or unix socket only)")
	clients := fs.Int("clients", 100_000, "known clients (at most 1,000,000)")
	channels := fs.Int("channels", 1_000_000, "stored channels in all (at most 10,000,000)")
	prefix := fs.String("prefix", "GID_bench@@@dev-", "client id prefix; ids are prefix + 0..clients-1")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *clients < 1 || *clients > 1_000_000 || *channels < *clients || *channels > 10_000_000 {
		return fmt.Errorf("need 1 ≤ -clients ≤ 1,000,000 and -clients ≤ -channels ≤ 10,000,000")
	}
	config, err := pgx.ParseConfig(*dbURL)
	if err != nil {
		return fmt.Errorf("parse -database-url: %w", err)
	}
	if !strings.HasPrefix(config.Host, "/") {
		if err := checkLoopback(fmt.Sprintf("%s:%d", config.Host, config.Port)); err != nil {
			return err
		}
	}
	store, err := pgstore.Open(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		return err
	}
	pool := store.Pool()
	perClient := *channels / *clients
	var firstSeq int64
	if err := pool.QueryRow(ctx, "SELECT nextval(pg_get_serial_sequence('events', 'seq'))").Scan(&firstSeq); err != nil {
		return fmt.Errorf("read max seq: %w", err)
	}
	start := time.Now()
	now := time.Now().UnixMilli()
	const chunk = 10_000
	for lo := 0; lo < *clients; lo += chunk {
		hi := min(lo+chunk, *clients)
		if _, err := pool.Exec(ctx, seedChunkSQL, lo, hi, perClient, firstSeq, *prefix, now); err != nil {
			return fmt.Errorf("seed clients %d..%d: %w", lo, hi-1, err)
		}
		fmt.Fprintf(out, "seeded clients %d..%d (%v)\n", lo, hi-1, time.Since(start).Round(time.Millisecond))
	}
	if _, err := pool.Exec(ctx, `SELECT setval(pg_get_serial_sequence('events', 'seq'), (SELECT max(last_seq) FROM channels))`); err != nil {
		return fmt.Errorf("advance the event sequence: %w", err)
	}
	if _, err := pool.Exec(ctx, "ANALYZE events; ANALYZE channels"); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	var nChannels, nEvents int64
	_ = pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM channels), (SELECT count(*) FROM events)").Scan(&nChannels, &nEvents)
	fmt.Fprintf(out, "seeded %d clients × %d channels in %v; the database holds %d channels, %d events\n",
		*clients, perClient, time.Since(start).Round(time.Millisecond), nChannels, nEvents)
	return nil
}
