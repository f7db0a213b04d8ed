-- presenced schema, version 2: the change feed of channels.
--
-- Every API process keeps an in-memory view of open channels and follows
-- the store to keep it current. Apply commits in seq order (it holds an
-- advisory transaction lock), and every statement that changes a channel
-- sets its last_seq to the newest seq of that channel, so
--
--     SELECT ... FROM channels WHERE last_seq > $cursor ORDER BY last_seq
--
-- returns every channel changed since the cursor, in commit order, with its
-- current state. channels_last_seq makes that an index range scan.
CREATE INDEX channels_last_seq ON channels (last_seq);

-- Followers LISTEN on presenced_channels and read the feed when notified,
-- so a change reaches every API process within milliseconds of its commit.
-- The trigger is per statement, not per row: one Apply batch sends one
-- notification (and PostgreSQL folds identical notifications of one
-- transaction into one), so a 1,000-event batch costs one NOTIFY. The
-- payload is empty: followers read the feed from their own cursor, which
-- is what makes a lost or coalesced notification harmless.
CREATE FUNCTION presenced_notify_channels() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('presenced_channels', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER channels_notify
    AFTER INSERT OR UPDATE ON channels
    FOR EACH STATEMENT EXECUTE FUNCTION presenced_notify_channels();
