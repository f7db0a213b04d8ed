-- presenced schema, version 8: the event history partitioned by day, so
-- that retention drops whole days instead of deleting rows.
--
-- events becomes a table partitioned by part_day, the UTC day the store
-- applied the event (a default of the insert, never given by presenced),
-- with one partition per day and a default partition for a day whose
-- partition is missing. presenced creates the partitions of the coming
-- days itself (pgstore.Store.EnsurePartitions, at every migration and
-- with every retention run), so the default partition stays empty.
--
-- Retention (pgstore.Store.Prune) first deletes the channels closed before
-- the cut-off, then drops each day partition older than it, copying
-- forward, into today's partition, the events of the channels that still
-- exist: open channels of any age, and channels closed inside the window.
--
-- The natural key (channel_id, event_type) is no longer a unique index:
-- a unique index on a partitioned table must contain the partition key,
-- and the key of an event does not say its day. Apply, serialized by its
-- advisory lock, stores an event only if its channel's row lacks that
-- event type (has_connect, has_disconnect, has_tcpclean), which is the same
-- rule, checked on a row Apply reads anyway. That also saves one index
-- entry (and its WAL) per event.
--
-- The conversion copies every event once, under an exclusive lock on
-- events (Apply waits; lookups, which read the view and channels, go on).
-- Measured here: 9.5 s per million events (BENCHMARKS.md, "Retention
-- by partitions").

ALTER TABLE events RENAME TO events_unpartitioned;
ALTER INDEX events_client_seq RENAME TO events_unpartitioned_client_seq;
ALTER INDEX events_client_time_seq RENAME TO events_unpartitioned_client_time_seq;
-- The sequence behind seq outlives the old table.
ALTER SEQUENCE events_seq_seq OWNED BY NONE;

CREATE TABLE events (
    seq           bigint      NOT NULL DEFAULT nextval('events_seq_seq'),
    channel_id    text COLLATE "C" NOT NULL,
    event_type    text COLLATE "C" NOT NULL CHECK (event_type IN ('connect', 'disconnect', 'tcpclean')),
    client_id     text COLLATE "C" NOT NULL,
    time          bigint      NOT NULL,
    client_ip     text        NOT NULL DEFAULT '',
    node          text COLLATE "C" NOT NULL DEFAULT '',
    epoch         text COLLATE "C" NOT NULL DEFAULT '',
    reason        text        NOT NULL DEFAULT '',
    username      text        NOT NULL DEFAULT '',
    keepalive     integer     NOT NULL DEFAULT 0,
    clean_session boolean,
    applied_at    timestamptz NOT NULL DEFAULT now(),
    node_seq      bigint      NOT NULL DEFAULT 0,
    source        text COLLATE "C" NOT NULL DEFAULT '',
    takeover_by   text COLLATE "C" NOT NULL DEFAULT '',
    part_day      date        NOT NULL DEFAULT ((now() AT TIME ZONE 'UTC')::date)
) PARTITION BY RANGE (part_day);
ALTER SEQUENCE events_seq_seq OWNED BY events.seq;

CREATE TABLE events_default PARTITION OF events DEFAULT;

-- A partition for every day the old table has events of, and for today
-- and the next three days.
DO $$
DECLARE
    first_day date := coalesce((SELECT min((applied_at AT TIME ZONE 'UTC')::date) FROM events_unpartitioned),
                               (now() AT TIME ZONE 'UTC')::date);
    day date;
BEGIN
    FOR day IN SELECT d::date FROM generate_series(first_day, (now() AT TIME ZONE 'UTC')::date + 3, interval '1 day') d LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
                       'events_d' || to_char(day, 'YYYYMMDD'), day, day + 1);
    END LOOP;
END
$$;

INSERT INTO events (seq, channel_id, event_type, client_id, time, client_ip, node, epoch, reason, username,
                    keepalive, clean_session, applied_at, node_seq, source, takeover_by, part_day)
SELECT seq, channel_id, event_type, client_id, time, client_ip, node, epoch, reason, username,
       keepalive, clean_session, applied_at, node_seq, source, takeover_by, (applied_at AT TIME ZONE 'UTC')::date
FROM events_unpartitioned;

DROP TABLE events_unpartitioned;

CREATE INDEX events_client_seq ON events (client_id, seq);
CREATE INDEX events_client_time_seq ON events (client_id, time, seq);
