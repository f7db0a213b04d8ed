package pgstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The event history is partitioned by part_day, the UTC day the store
// applied the event (migration 0008): one partition per day, named
// events_dYYYYMMDD, and events_default for a day that has none.

// partitionLockKey serializes partition maintenance (creating and dropping
// day partitions) among the processes of one database.
const partitionLockKey int64 = 0x70726573_70617274 // "prespart"

// partitionsAhead is how many days after today have their partition made
// ahead of time, so that a process that stops maintaining them (stopped,
// or its database unreachable for a while) leaves days of margin before
// events fall into the default partition.
const partitionsAhead = 3

// ensurePartitionsSQL creates the partitions from today to
// partitionsAhead days after today (the database's UTC day) that are
// missing; not yesterday's, which retention may have dropped. Rows that
// fell into the default partition for one of those days are moved into
// the day's new partition.
var ensurePartitionsSQL = fmt.Sprintf(`
DO $$
DECLARE
    today date := (now() AT TIME ZONE 'UTC')::date;
    day date;
    name text;
BEGIN
    FOR day IN SELECT d::date FROM generate_series(today, today + %d, interval '1 day') d LOOP
        name := 'events_d' || to_char(day, 'YYYYMMDD');
        CONTINUE WHEN to_regclass(name) IS NOT NULL;
        IF EXISTS (SELECT 1 FROM events_default WHERE part_day = day) THEN
            EXECUTE format('CREATE TABLE %%I (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
            EXECUTE format('WITH moved AS (DELETE FROM events_default WHERE part_day = %%L RETURNING *) INSERT INTO %%I SELECT * FROM moved', day, name);
            EXECUTE format('ALTER TABLE events ATTACH PARTITION %%I FOR VALUES FROM (%%L) TO (%%L)', name, day, day + 1);
        ELSE
            EXECUTE format('CREATE TABLE %%I PARTITION OF events FOR VALUES FROM (%%L) TO (%%L)', name, day, day + 1);
        END IF;
    END LOOP;
END
$$`, partitionsAhead)

// EnsurePartitions creates the day partitions of the event history from
// today to a few days ahead, those missing. Migrate calls it, and so
// does every retention run; it is cheap when there is nothing to do.
func (s *Store) EnsurePartitions(ctx context.Context) error { return ensurePartitions(ctx, s.pool) }

func ensurePartitions(ctx context.Context, db interface {
	Begin(context.Context) (pgx.Tx, error)
}) error {
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", partitionLockKey); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, ensurePartitionsSQL)
		return err
	})
	return storeErr("create event partitions", err)
}

// dayPartition is a day partition of events.
type dayPartition struct {
	name string
	day  time.Time // UTC midnight; the partition holds [day, day+1)
}

// dayPartitions lists the day partitions of events, oldest first.
func dayPartitions(ctx context.Context, q querier) ([]dayPartition, error) {
	rows, _ := q.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'events'::regclass AND c.relname LIKE 'events\_d%' ORDER BY c.relname`)
	var (
		name  string
		parts []dayPartition
	)
	_, err := pgx.ForEachRow(rows, []any{&name}, func() error {
		day, err := time.Parse("20060102", strings.TrimPrefix(name, "events_d"))
		if err != nil {
			return nil // not one of ours
		}
		parts = append(parts, dayPartition{name: name, day: day})
		return nil
	})
	return parts, err
}

// dropPartition drops one day partition whose every event was applied
// before the retention's cut-off, first copying forward (into today's
// partition, same seq) the events of channels that still exist: open
// channels of any age, and channels closed inside the window. Channels
// closed before the cut-off were deleted before (Prune), so their events
// go with the partition. The copy takes ordinary row locks; the detach at
// the end takes the exclusive lock on events, held only until the commit
// right after it.
func (s *Store) dropPartition(ctx context.Context, p dayPartition, closedBefore time.Time) (copied int64, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", partitionLockKey); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", p.name).Scan(&exists); err != nil || !exists {
			return err // nil when another process dropped it meanwhile
		}
		table := pgx.Identifier{p.name}.Sanitize()
		tag, err := tx.Exec(ctx, `INSERT INTO events (seq, channel_id, event_type, client_id, time, client_ip, node, epoch, reason,
			    username, keepalive, clean_session, applied_at, node_seq, source, takeover_by)
			SELECT seq, channel_id, event_type, client_id, time, client_ip, node, epoch, reason,
			    username, keepalive, clean_session, applied_at, node_seq, source, takeover_by
			FROM `+table+` e WHERE EXISTS (SELECT 1 FROM channels c WHERE c.channel_id = e.channel_id
			    AND NOT (c.has_tcpclean AND c.closed_at < $1))`, closedBefore)
		if err != nil {
			return err
		}
		copied = tag.RowsAffected()
		if _, err := tx.Exec(ctx, "ALTER TABLE events DETACH PARTITION "+table); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "DROP TABLE "+table)
		return err
	})
	return copied, storeErr("drop event partition "+p.name, err)
}
