-- presenced schema, version 1.
--
-- events keeps every lifecycle event once: (channel_id, event_type) is the
-- natural idempotency key, so a redelivered event is absorbed by
-- INSERT ... ON CONFLICT DO NOTHING. seq is the store's arrival order; it
-- pages history (keyset, never OFFSET) and resumes streams.
--
-- channels is the per-channel set of events seen, maintained in the same
-- transaction as events. Each per-event column is set once and never
-- overwritten, so the rule "online <=> some channel has connect and no
-- tcpclean" is evaluated on sets, whatever the delivery order.
-- Times (time, *_at bigint) are the broker's clock in ms since the Unix
-- epoch; applied_at/closed_at are the store's clock.

CREATE TABLE events (
    seq           bigserial   PRIMARY KEY,
    channel_id    text        NOT NULL,
    event_type    text        NOT NULL CHECK (event_type IN ('connect', 'disconnect', 'tcpclean')),
    client_id     text        NOT NULL,
    time          bigint      NOT NULL,
    client_ip     text        NOT NULL DEFAULT '',
    node          text        NOT NULL DEFAULT '',
    epoch         text        NOT NULL DEFAULT '',
    reason        text        NOT NULL DEFAULT '',
    username      text        NOT NULL DEFAULT '',
    keepalive     integer     NOT NULL DEFAULT 0,
    clean_session boolean,
    applied_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_channel_event_key UNIQUE (channel_id, event_type)
);

-- History of a client in arrival order (keyset on seq).
CREATE INDEX events_client_seq ON events (client_id, seq);
-- History in a time range, and the newest event time of a client (max(time)).
CREATE INDEX events_client_time_seq ON events (client_id, time, seq);

CREATE TABLE channels (
    channel_id     text    PRIMARY KEY,
    client_id      text    NOT NULL,
    client_ip      text,
    node           text,
    epoch          text,
    connect_at     bigint,
    disconnect_at  bigint,
    tcpclean_at    bigint,
    has_connect    boolean NOT NULL DEFAULT false,
    has_disconnect boolean NOT NULL DEFAULT false,
    has_tcpclean   boolean NOT NULL DEFAULT false,
    reason         text,
    first_seq      bigint  NOT NULL,
    last_seq       bigint  NOT NULL,
    -- closed_at is when the store applied the tcpclean; retention is measured
    -- on it (the store's clock), not on the broker's.
    closed_at      timestamptz
);

-- "Is X online": an index-only lookup of X's open channels.
CREATE INDEX channels_open_client ON channels (client_id) INCLUDE (connect_at)
    WHERE has_connect AND NOT has_tcpclean;
-- Every open channel in channel_id order, paged at start-up to build the
-- in-memory view.
CREATE INDEX channels_open_id ON channels (channel_id)
    WHERE has_connect AND NOT has_tcpclean;
-- A client's channels, newest first.
CREATE INDEX channels_client_last_seq ON channels (client_id, last_seq);
-- Retention of closed channels.
CREATE INDEX channels_closed_at ON channels (closed_at) WHERE has_tcpclean;

-- Poison messages: events that could not be decoded or validated, parked
-- for operators instead of blocking the pipeline.
CREATE TABLE rejected_events (
    id          bigserial   PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    source      text        NOT NULL,
    raw         bytea       NOT NULL,
    reason      text        NOT NULL
);
CREATE INDEX rejected_events_received_at ON rejected_events (received_at);
