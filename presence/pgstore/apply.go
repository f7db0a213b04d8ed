package pgstore

import (
	"cmp"
	"context"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/presenced/presenced/presence"
)

// ApplyResult tells what a batch changed.
type ApplyResult struct {
	// Applied are the events that were new, with their Seq and AppliedAt,
	// in Seq order.
	Applied []presence.StoredEvent
	// Duplicates counts the events of the batch the store already had
	// (including repeats within the batch).
	Duplicates int
}

// applyLockKey is the pg_advisory_xact_lock key that serializes Apply
// transactions, so that seq order is commit order: once a reader has seen
// seq N, no event with a smaller seq can appear later. Streams resume "after
// seq N" and the start-up snapshot (ForEachOpenChannel) relies on it. One
// batched statement per transaction keeps the serialized section short.
const applyLockKey int64 = 0x70726573_6170706c // "presappl"

// applySQL inserts the batch into events, absorbing duplicates on the
// natural key, and folds the newly inserted events into their channels rows
// in the same statement. Each per-event column of channels is set by the
// one event of that type and kept forever after (COALESCE(old, new)), so
// the result does not depend on delivery order. Rows are written in
// (channel_id, event_type) order.
const applySQL = `
WITH input AS (
    SELECT t.*, $13::text AS source
    FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[],
                $7::text[], $8::text[], $9::text[], $10::integer[], $11::boolean[], $12::bigint[])
        AS t(channel_id, event_type, client_id, time, client_ip, node, epoch, reason, username, keepalive, clean_session, node_seq)
), inserted AS (
    INSERT INTO events (channel_id, event_type, client_id, time, client_ip, node, epoch, reason, username, keepalive, clean_session, node_seq, source)
    SELECT * FROM input ORDER BY channel_id, event_type
    ON CONFLICT (channel_id, event_type) DO NOTHING
    RETURNING seq, channel_id, event_type, client_id, time, client_ip, node, epoch, reason, applied_at, node_seq
), per_channel AS (
    SELECT channel_id,
           -- every event of a channel carries the same details; min()
           -- picks one deterministically, whatever the order
           min(client_id)                                                  AS client_id,
           min(client_ip) FILTER (WHERE client_ip <> '')                   AS client_ip,
           min(node) FILTER (WHERE node <> '')                             AS node,
           min(epoch) FILTER (WHERE epoch <> '')                           AS epoch,
           min(time) FILTER (WHERE event_type = 'connect')                 AS connect_at,
           min(time) FILTER (WHERE event_type = 'disconnect')              AS disconnect_at,
           min(time) FILTER (WHERE event_type = 'tcpclean')                AS tcpclean_at,
           bool_or(event_type = 'connect')                                 AS has_connect,
           bool_or(event_type = 'disconnect')                              AS has_disconnect,
           bool_or(event_type = 'tcpclean')                                AS has_tcpclean,
           min(reason) FILTER (WHERE event_type = 'tcpclean' AND reason <> '') AS reason,
           min(seq)                                                        AS first_seq,
           max(seq)                                                        AS last_seq,
           min(applied_at) FILTER (WHERE event_type = 'tcpclean')          AS closed_at,
           min(node_seq) FILTER (WHERE event_type = 'connect' AND node_seq > 0) AS connect_node_seq
    FROM inserted
    GROUP BY channel_id
), upserted AS (
    INSERT INTO channels AS c (channel_id, client_id, client_ip, node, epoch, connect_at, disconnect_at, tcpclean_at,
                               has_connect, has_disconnect, has_tcpclean, reason, first_seq, last_seq, closed_at, connect_node_seq)
    SELECT channel_id, client_id, client_ip, node, epoch, connect_at, disconnect_at, tcpclean_at,
           has_connect, has_disconnect, has_tcpclean, reason, first_seq, last_seq, closed_at, connect_node_seq
    FROM per_channel ORDER BY channel_id
    ON CONFLICT (channel_id) DO UPDATE SET
        client_ip      = COALESCE(c.client_ip, EXCLUDED.client_ip),
        node           = COALESCE(c.node, EXCLUDED.node),
        epoch          = COALESCE(c.epoch, EXCLUDED.epoch),
        connect_at     = COALESCE(c.connect_at, EXCLUDED.connect_at),
        disconnect_at  = COALESCE(c.disconnect_at, EXCLUDED.disconnect_at),
        tcpclean_at    = COALESCE(c.tcpclean_at, EXCLUDED.tcpclean_at),
        has_connect    = c.has_connect OR EXCLUDED.has_connect,
        has_disconnect = c.has_disconnect OR EXCLUDED.has_disconnect,
        has_tcpclean   = c.has_tcpclean OR EXCLUDED.has_tcpclean,
        reason         = COALESCE(c.reason, EXCLUDED.reason),
        first_seq      = LEAST(c.first_seq, EXCLUDED.first_seq),
        last_seq       = GREATEST(c.last_seq, EXCLUDED.last_seq),
        closed_at      = COALESCE(c.closed_at, EXCLUDED.closed_at),
        connect_node_seq = COALESCE(c.connect_node_seq, EXCLUDED.connect_node_seq)
)
SELECT seq, channel_id, event_type, applied_at FROM inserted ORDER BY seq`

// Sources of stored events (events.source): the path by which an event
// reached the store, shown in history.
const (
	sourceBroker = "broker" // the broker pipeline: the outbox or RocketMQ
	sourceAPI    = "api"    // POST /events
	sourceStore  = "store"  // closes the store synthesized from node reports and leases
)

// Apply stores a batch of valid events idempotently, in one transaction:
// events already stored (same channel and event type) are absorbed, and the
// channels they belong to are updated from the new ones. Applying the same
// batch again changes nothing and returns no Applied events. Events must be
// validated before (presence.Event.Validate); should the database still
// refuse one, the whole batch fails with a presence.EINVALID error, and
// with presence.EUNAVAILABLE when it may be retried as it is. Apply is the
// broker pipeline's path: its events are stored with source "broker".
func (s *Store) Apply(ctx context.Context, events []presence.Event) (ApplyResult, error) {
	return s.apply(ctx, events, sourceBroker)
}

// apply is Apply with the source to record.
func (s *Store) apply(ctx context.Context, events []presence.Event, source string) (ApplyResult, error) {
	batch := dedupe(events)
	if len(batch) == 0 {
		return ApplyResult{}, nil
	}
	// The lock and the statement go out as one pipelined batch, which
	// PostgreSQL runs as one implicit transaction committed at its end:
	// one round trip instead of four (BEGIN, lock, statement, COMMIT), all
	// inside the serialized section. An error rolls back all of it.
	var b pgx.Batch
	b.Queue("SELECT pg_advisory_xact_lock($1)", applyLockKey)
	b.Queue(applySQL, newColumns(batch).args(source)...)
	var applied []presence.StoredEvent
	err := func() error {
		results := s.pool.SendBatch(ctx, &b)
		defer results.Close()
		if _, err := results.Exec(); err != nil {
			return err
		}
		rows, err := results.Query()
		if applied, err = collectApplied(rows, err, len(batch)); err != nil {
			return err
		}
		// Close reads the end of the batch: the implicit commit, and any
		// error it met (a deferred constraint, the server going away).
		return results.Close()
	}()
	if err != nil {
		return ApplyResult{}, storeErr("apply events", err)
	}
	return ApplyResult{Applied: withEvents(applied, batch), Duplicates: len(events) - len(applied)}, nil
}

// collectApplied reads the rows of applySQL: the new events' keys, seqs
// and apply times, in seq order; at most n.
func collectApplied(rows pgx.Rows, err error, n int) ([]presence.StoredEvent, error) {
	if err != nil {
		return nil, err
	}
	applied := make([]presence.StoredEvent, 0, n)
	var e presence.StoredEvent
	_, err = pgx.ForEachRow(rows, []any{&e.Seq, &e.ChannelID, &e.Type, &e.AppliedAt}, func() error {
		applied = append(applied, e)
		return nil
	})
	return applied, err
}

// withEvents completes the applied events read back from the store with
// the events of the batch they are.
func withEvents(applied []presence.StoredEvent, batch []presence.Event) []presence.StoredEvent {
	byKey := make(map[presence.Key]int, len(batch))
	for i, e := range batch {
		byKey[e.Key()] = i
	}
	for i, a := range applied {
		applied[i].Event = batch[byKey[a.Key()]]
	}
	return applied
}

// dedupe drops repeats of a key within the batch (the first wins, as the
// database would keep it) and sorts by (channel, event type), the order in
// which every Apply writes rows.
func dedupe(events []presence.Event) []presence.Event {
	seen := make(map[presence.Key]bool, len(events))
	batch := make([]presence.Event, 0, len(events))
	for _, e := range events {
		if !seen[e.Key()] {
			seen[e.Key()] = true
			batch = append(batch, e)
		}
	}
	// Keys are unique now, so an unstable sort gives the same order.
	slices.SortFunc(batch, func(a, b presence.Event) int {
		return cmp.Or(cmp.Compare(a.ChannelID, b.ChannelID), cmp.Compare(a.Type, b.Type))
	})
	return batch
}

// columns is a batch as one array per column, for unnest.
type columns struct {
	channelIDs, types, clientIDs []string
	times                        []int64
	clientIPs, nodes, epochs     []string
	reasons, usernames           []string
	keepalives                   []int32
	cleanSessions                []*bool
	nodeSeqs                     []int64
}

func newColumns(batch []presence.Event) columns {
	n := len(batch)
	c := columns{
		channelIDs: make([]string, n), types: make([]string, n), clientIDs: make([]string, n),
		times: make([]int64, n), clientIPs: make([]string, n), nodes: make([]string, n), epochs: make([]string, n),
		reasons: make([]string, n), usernames: make([]string, n), keepalives: make([]int32, n), cleanSessions: make([]*bool, n),
		nodeSeqs: make([]int64, n),
	}
	for i, e := range batch {
		c.channelIDs[i], c.types[i], c.clientIDs[i] = e.ChannelID, string(e.Type), e.ClientID
		c.times[i], c.clientIPs[i], c.nodes[i], c.epochs[i] = e.Time, e.ClientIP, e.Node, e.Epoch
		c.reasons[i], c.usernames[i] = string(e.Reason), e.Username
		c.keepalives[i], c.cleanSessions[i] = int32(e.Keepalive), e.CleanSession
		c.nodeSeqs[i] = int64(e.NodeSeq)
	}
	return c
}

// args are the parameters of applySQL, source the events' source.
func (c columns) args(source string) []any {
	return []any{c.channelIDs, c.types, c.clientIDs, c.times, c.clientIPs, c.nodes, c.epochs,
		c.reasons, c.usernames, c.keepalives, c.cleanSessions, c.nodeSeqs, source}
}
