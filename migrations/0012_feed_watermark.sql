-- presenced schema, version 12: concurrent writers with an exact change
-- feed.
--
-- Until now Apply held an exclusive advisory lock, so seq order was commit
-- order and "channels with last_seq > cursor" never missed a change. Now
-- several Apply transactions run at once (they take that lock shared; see
-- pgstore/apply.go), so a transaction may commit a change with a lower seq
-- after another committed a higher one. The feed stays exact with a
-- watermark instead (pgstore/watermark.go): every writer takes its
-- transaction id before its first seq, and the feed only returns changes
-- up to a seq L once every transaction that existed when L was read has
-- ended (pg_snapshot_xmin). That relies on seq values being handed out one
-- at a time, straight from the sequence: with a per-session cache a session
-- could hand out, later, a value below one another session already used.
ALTER SEQUENCE events_seq_seq CACHE 1;

-- The natural key (channel, event type) was checked under the exclusive
-- lock (migration 0008). Two concurrent writers may now both insert the
-- same event of a channel neither has stored yet; the channels upsert,
-- which locks the row and sees its newest committed version, finds the
-- event type already set by the other and calls this, which fails the
-- transaction as a serialization failure. Apply retries it, and the retry
-- finds the event stored: a duplicate, absorbed as ever.
CREATE FUNCTION presenced_apply_conflict(channel text, event_type text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
        MESSAGE = format('event %s of channel %s was stored by a concurrent transaction', event_type, channel);
END
$$;

-- Locks: ALTER SEQUENCE holds a lock on the sequence alone for an instant
-- and CREATE FUNCTION touches no table, so this migration takes no time and
-- blocks nothing, however big the store (no table is rewritten or scanned).
