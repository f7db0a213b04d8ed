-- presenced schema, version 7: takeovers that never show a client offline.
--
-- When a client id connects again, the broker records the new channel's
-- connect before it closes the old channel, and the old channel's tcpclean
-- (reason 'takeover') names its successor (takeover_by). The events may
-- still reach the store in either order — in different RocketMQ queues, in
-- different batches — and applying the old tcpclean first would show the
-- client offline for a moment although it never was.
--
-- So a takeover's tcpclean whose successor the store has not seen yet is
-- held in takeovers_pending, and applied in the same statement that stores
-- the successor's first event (after it, in seq order), or once it has been
-- held longer than the store's bound (10 minutes: a successor that never
-- comes, e.g. from a broker that lost it), whichever is first. While held,
-- the old channel counts as open — which is the truth: the client is
-- connected, on its successor. One row per closed channel at most.
ALTER TABLE events ADD COLUMN takeover_by text COLLATE "C" NOT NULL DEFAULT '';

CREATE TABLE takeovers_pending (
    channel_id    text COLLATE "C" PRIMARY KEY,
    takeover_by   text COLLATE "C" NOT NULL,
    client_id     text COLLATE "C" NOT NULL,
    time          bigint      NOT NULL,
    client_ip     text        NOT NULL DEFAULT '',
    node          text COLLATE "C" NOT NULL DEFAULT '',
    epoch         text COLLATE "C" NOT NULL DEFAULT '',
    reason        text        NOT NULL DEFAULT '',
    node_seq      bigint      NOT NULL DEFAULT 0,
    source        text COLLATE "C" NOT NULL,
    held_at       timestamptz NOT NULL DEFAULT now()
);
-- Released by successor, and by age.
CREATE INDEX takeovers_pending_takeover_by ON takeovers_pending (takeover_by);
CREATE INDEX takeovers_pending_held_at ON takeovers_pending (held_at);
