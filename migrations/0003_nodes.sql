-- presenced schema, version 3: broker nodes, epochs and leases.
--
-- A broker that dies never sends tcpclean. Every broker process reports
-- itself (node_start, node_heartbeat, node_channels, node_stop) with its
-- stable node id and a fresh epoch per start. The consumer keeps the current
-- epoch of every node here; channels of any other epoch of that node are
-- closed (fenced) with a synthesized tcpclean, reason node_lost. Liveness is
-- judged on the store's clock (last_seen = now() when a report is applied),
-- never on the brokers' clocks.
CREATE TABLE nodes (
    node         text        PRIMARY KEY,
    epoch        text        NOT NULL,
    generation   bigint      NOT NULL DEFAULT 0,
    state        text        NOT NULL CHECK (state IN ('alive', 'silent', 'lost', 'stopped')),
    started_at   timestamptz NOT NULL DEFAULT now(),
    last_seen    timestamptz NOT NULL DEFAULT now(),
    lease_ms     bigint      NOT NULL,
    silent_since timestamptz,
    -- the node's own number of the newest report applied (ordering within an epoch)
    last_seq     bigint      NOT NULL DEFAULT 0
);

-- Every epoch ever seen of a node. An epoch, once superseded, is fenced for
-- good: its late reports change nothing, whatever order they arrive in.
CREATE TABLE node_epochs (
    node       text        NOT NULL,
    epoch      text        NOT NULL,
    generation bigint      NOT NULL DEFAULT 0,
    first_seen timestamptz NOT NULL DEFAULT clock_timestamp(),
    fenced_at  timestamptz,
    PRIMARY KEY (node, epoch)
);

-- The broker's number of the connect event (Event.nodeSeq): reconciliation
-- closes only channels whose connect was numbered before the channel-set
-- report, so a channel opened after the report is never closed by it.
ALTER TABLE events ADD COLUMN node_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE channels ADD COLUMN connect_node_seq bigint;

-- The open channels of one node (and epoch): fencing and reconciliation.
CREATE INDEX channels_open_node ON channels (node, epoch)
    WHERE has_connect AND NOT has_tcpclean;
