-- presenced schema, version 15: presence changes caused by broker nodes
-- going silent and coming back, and the nodes' silent spells, for webhooks.
--
-- When a node misses its lease (ExpireNodes) every client whose open
-- channels are then all on silent nodes is answered "unknown" by the API;
-- when the node reports again before it is lost, those clients are online
-- again. No channel changes at either moment, so the channel feed says
-- nothing. These rows record, per client, that change of presence, at the
-- moment the store decides it.
--
-- seq comes from the feed's own sequence (events_seq_seq), so webhooks
-- follow channel changes and these rows with one cursor, in one order, and
-- the feed's watermark (migration 0012) covers them: the transactions that
-- insert them take their transaction id before the seq, as Apply does.
--
-- One row per (node, epoch, silent spell, state, client): silent_since names
-- the spell (the store sets it once when the node turns silent), so two
-- lease monitors deciding the same transition at once record it once.
CREATE TABLE node_presence_changes (
    seq          bigint      PRIMARY KEY DEFAULT nextval('events_seq_seq'),
    client_id    text        COLLATE "C" NOT NULL,
    node         text        NOT NULL,
    epoch        text        NOT NULL,
    silent_since timestamptz NOT NULL,
    state        text        NOT NULL CHECK (state IN ('unknown', 'online')),
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (node, epoch, silent_since, state, client_id)
);

-- The silent spells of the nodes, in the same seq space: a spell begins at
-- start_seq (taken when the node turned silent) and ends at end_seq (taken
-- when the node reported again, was declared lost, or started a new
-- epoch); NULL while it lasts. They tell the webhook dispatcher whether a
-- client's other channels were all on silent nodes at the seq of a channel
-- change, so that a channel change during a spell is announced as the API
-- answers it (a client whose last channel on a live node closes while the
-- others are on a silent node becomes unknown, not unchanged).
CREATE TABLE node_silent_spells (
    node         text        NOT NULL,
    epoch        text        NOT NULL,
    silent_since timestamptz NOT NULL,
    start_seq    bigint      NOT NULL DEFAULT nextval('events_seq_seq'),
    end_seq      bigint,
    PRIMARY KEY (node, silent_since)
);

-- New tables: instant.
