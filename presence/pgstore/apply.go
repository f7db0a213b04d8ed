package pgstore

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

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
	// Held counts the takeover tcpcleans of the batch held back until
	// their successor's first event is stored (see applySQL). Applied may
	// include held events of earlier batches that this one released.
	Held int

	released int // of Applied, the held events of earlier batches
}

// applyLockKey is the advisory transaction lock of the transactions that
// store events. Apply takes it shared, so any number of them run at once;
// Ingest and the release of held takeovers take it exclusive, to decide
// with no writer running. Either way the statement that takes it also
// takes the transaction's id, before any seq: the feed's watermark relies
// on it (feedWatermark).
const applyLockKey int64 = 0x70726573_6170706c // "presappl"

// The lock statements of applyLockKey, with the transaction id taken.
const (
	applySharedLockSQL    = "SELECT pg_advisory_xact_lock_shared($1), pg_current_xact_id()"
	applyExclusiveLockSQL = "SELECT pg_advisory_xact_lock($1), pg_current_xact_id()"
)

// releaseStoredSuccessorsWhere selects the held takeover tcpcleans whose
// successor is settled after all (see applySQL). Apply decides to hold a close when its
// snapshot lacks the successor; a concurrent writer may be storing the
// successor meanwhile, unseen, and not see the held row either, so nobody
// would release it but by age. An Apply that held something therefore
// runs releaseHeld with this once it committed: under the exclusive lock
// every writer that ran alongside it has ended, and one that starts later
// sees the held row and releases it itself.
const releaseStoredSuccessorsWhere = `EXISTS (SELECT 1 FROM channels c WHERE c.channel_id = takeovers_pending.takeover_by
    AND (c.has_connect OR (c.has_tcpclean AND c.reason IS DISTINCT FROM 'takeover')))`

// applySQL inserts the batch into events, absorbing duplicates on the
// natural key (channel, event type) — an event whose channel's row already
// has that event type is not stored again (migration 0008: the key is not a
// unique index of the partitioned events) — and folds the newly inserted
// events into their channels rows in the same statement. Each per-event
// column of channels is set by the one event of that type and kept forever
// after (COALESCE(old, new)), so the result does not depend on delivery
// order.
//
// Concurrent writers: two transactions may both insert the same event of
// a channel, each before the other committed. The channels upsert then
// finds it: ON CONFLICT locks the row and sees its newest committed
// version, where the other's event type is already set, and
// presenced_apply_conflict fails the transaction with a serialization
// failure (migration 0012); Apply retries it and finds a duplicate. Rows
// are upserted in channel_id order, so two writers lock shared channels in
// the same order and cannot deadlock there.
//
// A takeover's tcpclean whose successor is not settled — neither its
// connect nor a close of its own other than a takeover is stored or in the
// batch — is held in takeovers_pending instead ($19 turns holding off);
// the batch that settles the successor releases it (migration 0007).
// Not any event of the successor: delivered out of order (RocketMQ), a
// successor's own takeover close may come before its connect, and a close
// stored on that left a chain X → Y → Z with every channel closed until Z's
// connect came — offline in the store itself for that moment. A successor
// that closed for good (its client left) does release it: the client is
// offline then, truly. Events are inserted in (channel_id, event_type) order, takeover
// tcpcleans last, so a successor's connect always has a lower seq than
// the close of the channel it took over: a follower of the change feed
// sees the client's new channel open before its old one closes.
//
// The statement returns the inserted events' keys, seqs and apply times in
// seq order — with the whole event for a released one, which is not in the
// batch — and one row with seq 0 for each event newly held (a redelivery
// of one held already is a duplicate).
const (
	applySQL = applyBatchCTE + applyHoldCTEs + applyReleaseCTE + applyFoldCTEs + applyHeldResult + " ORDER BY 1"
	// applyNoHoldSQL is applySQL for a batch without takeover tcpcleans to
	// hold (the common case, and cheaper): it only releases.
	applyNoHoldSQL = applyBatchCTE + `, direct AS (SELECT * FROM batch)` + applyReleaseOfBatchCTE + applyFoldCTEs + applyResult + " ORDER BY 1"
)

const applyBatchCTE = `
WITH batch AS (
    SELECT t.*, $13::text AS source
    FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[],
                $7::text[], $8::text[], $9::text[], $10::integer[], $11::boolean[], $12::bigint[], $14::text[],
                $15::text[], $16::text[], $17::smallint[], $18::smallint[])
        AS t(channel_id, event_type, client_id, time, client_ip, node, epoch, reason, username, keepalive, clean_session, node_seq, takeover_by,
             tls_version, tls_client_subject, protocol_level, reason_code)
)`

const applyHoldCTEs = `, waiting AS (
    SELECT b.* FROM batch b
    WHERE $19::boolean AND b.takeover_by <> ''
      AND NOT EXISTS (SELECT 1 FROM channels c WHERE c.channel_id = b.takeover_by
                      AND (c.has_connect OR (c.has_tcpclean AND c.reason IS DISTINCT FROM 'takeover')) OFFSET 0)
      AND NOT EXISTS (SELECT 1 FROM batch s WHERE s.channel_id = b.takeover_by
                      AND (s.event_type = 'connect' OR (s.event_type = 'tcpclean' AND s.reason <> 'takeover')))
), held AS (
    INSERT INTO takeovers_pending (channel_id, takeover_by, client_id, time, client_ip, node, epoch, reason, node_seq, reason_code, source)
    SELECT channel_id, takeover_by, client_id, time, client_ip, node, epoch, reason, node_seq, reason_code, source FROM waiting
    ON CONFLICT (channel_id) DO NOTHING
    RETURNING channel_id
), direct AS (
    SELECT b.* FROM batch b
    WHERE NOT EXISTS (SELECT 1 FROM waiting w WHERE w.channel_id = b.channel_id AND w.event_type = b.event_type)
)`

// applyReleaseCTE releases the closes held for the channels direct
// settles (see applySQL), and inserts direct and them. In applyNoHoldSQL, direct is the whole
// batch, read once more for its connects.
const (
	applyReleaseCTE = `, released AS (
    DELETE FROM takeovers_pending p WHERE p.takeover_by IN (SELECT channel_id FROM direct WHERE event_type = 'connect' OR (event_type = 'tcpclean' AND reason <> 'takeover'))
` + applyInsertCTEs
	applyReleaseOfBatchCTE = `, released AS (
    DELETE FROM takeovers_pending p WHERE p.takeover_by IN (SELECT channel_id FROM batch WHERE event_type = 'connect' OR (event_type = 'tcpclean' AND reason <> 'takeover'))
` + applyInsertCTEs
)

// applyInsertCTEs ends released and inserts direct and released into
// events: takeover tcpcleans last.
//
// Each look-up of a batch's channels in channels ends in OFFSET 0 (here and
// in applyHoldCTEs), which keeps it a probe of channels_pkey per event
// instead of an anti join: the planner hashed the whole of channels for
// the join whenever its statistics said the table was small, as they do
// for a young store until autoanalyze first runs (at most once a minute),
// and a connect storm into a fresh store then read the whole table once
// per batch. A batch is at most a few thousand events; probing is right
// at any table size.
const applyInsertCTEs = `    RETURNING p.channel_id, 'tcpclean'::text AS event_type, p.client_id, p.time, p.client_ip, p.node, p.epoch, p.reason,
              ''::text AS username, 0 AS keepalive, NULL::boolean AS clean_session, p.node_seq, p.takeover_by,
              ''::text AS tls_version, ''::text AS tls_client_subject, NULL::smallint AS protocol_level, p.reason_code, p.source
), input AS (
    SELECT DISTINCT ON (channel_id, event_type) * FROM (
        SELECT *, 0 AS pref FROM direct
        UNION ALL
        SELECT *, 1 AS pref FROM released
    ) u
    ORDER BY channel_id, event_type, pref
), inserted AS (
    INSERT INTO events (channel_id, event_type, client_id, time, client_ip, node, epoch, reason, username, keepalive, clean_session, node_seq, takeover_by,
                        tls_version, tls_client_subject, protocol_level, reason_code, source)
    SELECT channel_id, event_type, client_id, time, client_ip, node, epoch, reason, username, keepalive, clean_session, node_seq, takeover_by,
           tls_version, tls_client_subject, protocol_level, reason_code, source
    FROM input i
    WHERE NOT EXISTS (SELECT 1 FROM channels c WHERE c.channel_id = i.channel_id
                      AND CASE i.event_type WHEN 'connect' THEN c.has_connect
                                            WHEN 'disconnect' THEN c.has_disconnect
                                            ELSE c.has_tcpclean END
                      OFFSET 0)
    ORDER BY takeover_by <> '', channel_id, event_type
    RETURNING seq, channel_id, event_type, client_id, time, client_ip, node, epoch, reason, applied_at, node_seq, takeover_by,
              username, keepalive, clean_session, tls_version, tls_client_subject, protocol_level, reason_code
)`

const applyFoldCTEs = `, per_channel AS (
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
           min(node_seq) FILTER (WHERE event_type = 'connect' AND node_seq > 0) AS connect_node_seq,
           -- how the connection was made: from its connect event
           min(username) FILTER (WHERE event_type = 'connect')             AS username,
           min(keepalive) FILTER (WHERE event_type = 'connect')            AS keepalive,
           bool_or(clean_session) FILTER (WHERE event_type = 'connect')    AS clean_session,
           min(tls_version) FILTER (WHERE event_type = 'connect' AND tls_version <> '') AS tls_version,
           min(tls_client_subject) FILTER (WHERE event_type = 'connect' AND tls_client_subject <> '') AS tls_client_subject,
           min(protocol_level) FILTER (WHERE event_type = 'connect')       AS protocol_level,
           -- the close's MQTT 5 reason code: the tcpclean's, else the disconnect's
           coalesce(min(reason_code) FILTER (WHERE event_type = 'tcpclean'),
                    min(reason_code) FILTER (WHERE event_type = 'disconnect')) AS reason_code
    FROM inserted
    GROUP BY channel_id
), upserted AS (
    INSERT INTO channels AS c (channel_id, client_id, client_ip, node, epoch, connect_at, disconnect_at, tcpclean_at,
                               has_connect, has_disconnect, has_tcpclean, reason, first_seq, last_seq, closed_at, connect_node_seq,
                               username, keepalive, clean_session, tls_version, tls_client_subject, protocol_level, reason_code)
    SELECT channel_id, client_id, client_ip, node, epoch, connect_at, disconnect_at, tcpclean_at,
           has_connect, has_disconnect, has_tcpclean, reason, first_seq, last_seq, closed_at, connect_node_seq,
           username, keepalive, clean_session, tls_version, tls_client_subject, protocol_level, reason_code
    FROM per_channel ORDER BY channel_id
    ON CONFLICT (channel_id) DO UPDATE SET
        client_ip      = COALESCE(c.client_ip, EXCLUDED.client_ip),
        node           = COALESCE(c.node, EXCLUDED.node),
        epoch          = COALESCE(c.epoch, EXCLUDED.epoch),
        connect_at     = COALESCE(c.connect_at, EXCLUDED.connect_at),
        disconnect_at  = COALESCE(c.disconnect_at, EXCLUDED.disconnect_at),
        tcpclean_at    = COALESCE(c.tcpclean_at, EXCLUDED.tcpclean_at),
        has_connect = CASE WHEN c.has_connect AND EXCLUDED.has_connect THEN presenced_apply_conflict(c.channel_id, 'connect')
                       ELSE c.has_connect OR EXCLUDED.has_connect END,
        has_disconnect = CASE WHEN c.has_disconnect AND EXCLUDED.has_disconnect THEN presenced_apply_conflict(c.channel_id, 'disconnect')
                       ELSE c.has_disconnect OR EXCLUDED.has_disconnect END,
        has_tcpclean = CASE WHEN c.has_tcpclean AND EXCLUDED.has_tcpclean THEN presenced_apply_conflict(c.channel_id, 'tcpclean')
                       ELSE c.has_tcpclean OR EXCLUDED.has_tcpclean END,
        reason         = COALESCE(c.reason, EXCLUDED.reason),
        first_seq      = LEAST(c.first_seq, EXCLUDED.first_seq),
        last_seq       = GREATEST(c.last_seq, EXCLUDED.last_seq),
        closed_at      = COALESCE(c.closed_at, EXCLUDED.closed_at),
        connect_node_seq = COALESCE(c.connect_node_seq, EXCLUDED.connect_node_seq),
        username       = COALESCE(c.username, EXCLUDED.username),
        keepalive      = COALESCE(c.keepalive, EXCLUDED.keepalive),
        clean_session  = COALESCE(c.clean_session, EXCLUDED.clean_session),
        tls_version    = COALESCE(c.tls_version, EXCLUDED.tls_version),
        protocol_level = COALESCE(c.protocol_level, EXCLUDED.protocol_level),
        -- a tcpclean's code wins over a disconnect's, in either order
        reason_code    = CASE WHEN EXCLUDED.has_tcpclean AND EXCLUDED.reason_code IS NOT NULL THEN EXCLUDED.reason_code
                              ELSE COALESCE(c.reason_code, EXCLUDED.reason_code) END,
        tls_client_subject = COALESCE(c.tls_client_subject, EXCLUDED.tls_client_subject)
)`

// applyResult returns the inserted events, the whole event of a takeover
// tcpclean (it may be a released one, which is not in the batch).
const applyResult = `
SELECT seq, channel_id, event_type, applied_at, t.*
FROM inserted LEFT JOIN LATERAL (SELECT client_id, time, client_ip, node, epoch, reason, node_seq, takeover_by
                                 WHERE takeover_by <> '') t ON true`

const applyHeldResult = applyResult + `
UNION ALL
SELECT 0, channel_id, 'tcpclean', now(), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM held`

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
//
// Any number of Apply calls may run at once, each its own transaction
// (--store-writers): the result is the same as applying them one after the
// other, and the change feed stays exact (feedWatermark).
func (s *Store) Apply(ctx context.Context, events []presence.Event) (ApplyResult, error) {
	return s.apply(ctx, events, sourceBroker)
}

// apply is Apply with the source to record.
func (s *Store) apply(ctx context.Context, events []presence.Event, source string) (ApplyResult, error) {
	batch := dedupe(events)
	if len(batch) == 0 {
		return ApplyResult{}, nil
	}
	// A conflict with a concurrent writer (see applySQL) is retried here,
	// a few times and briefly: the retry finds the other's events stored.
	backoff := presence.Backoff{Min: time.Millisecond, Max: 50 * time.Millisecond}
	for {
		rows, err := s.applyOnce(ctx, batch, source)
		if err == nil {
			result := rows.result(batch, len(events))
			if result.Held > 0 {
				released, err := s.releaseHeld(ctx, releaseStoredSuccessorsWhere)
				if err != nil {
					// The batch is stored; a retry of it finds duplicates,
					// and what stays held is released by age at worst.
					return ApplyResult{}, storeErr("release held takeovers", err)
				}
				result.Applied = append(result.Applied, released...)
				result.released += len(released)
			}
			s.countTakeovers(result)
			return result, nil
		}
		if !isWriteConflict(err) || backoff.Failures() >= maxConflictRetries {
			return ApplyResult{}, storeErr("apply events", err)
		}
		s.writes.conflicts.Add(1)
		if backoff.Wait(ctx) != nil {
			return ApplyResult{}, storeErr("apply events", err)
		}
	}
}

// maxConflictRetries bounds the retries of one Apply after conflicts with
// concurrent writers; past it the caller sees EUNAVAILABLE and retries the
// batch as after any transient failure.
const maxConflictRetries = 8

// applyOnce runs one transaction of apply. The lock and the statement go
// out as one pipelined batch, which PostgreSQL runs as one implicit
// transaction committed at its end: one round trip instead of four (BEGIN,
// lock, statement, COMMIT). An error rolls back all of it.
func (s *Store) applyOnce(ctx context.Context, batch []presence.Event, source string) (appliedRows, error) {
	var b pgx.Batch
	b.Queue(applySharedLockSQL, applyLockKey)
	sql, args := applyStatement(batch, source, true)
	b.Queue(sql, args...)
	var rows appliedRows
	results := s.pool.SendBatch(ctx, &b)
	defer results.Close()
	if _, err := results.Exec(); err != nil {
		return rows, err
	}
	var err error
	if rows, err = collectApplied(results.Query()); err != nil {
		return rows, err
	}
	// Close reads the end of the batch: the implicit commit, and any
	// error it met (a deferred constraint, the server going away).
	return rows, results.Close()
}

// isWriteConflict tells a failure that retrying the same transaction
// resolves: a serialization failure (a concurrent writer stored the same
// event, applySQL) or a deadlock (held takeovers released in different
// orders).
func isWriteConflict(err error) bool {
	pgErr, ok := errors.AsType[*pgconn.PgError](err)
	return ok && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// writeCounters count the Apply transactions retried after a conflict
// with a concurrent writer.
type writeCounters struct{ conflicts atomic.Uint64 }

// countTakeovers adds the takeover tcpcleans a batch held and released to
// the Store's counters.
func (s *Store) countTakeovers(result ApplyResult) {
	s.takeovers.held.Add(uint64(result.Held))
	s.takeovers.released.Add(uint64(result.released))
}

// appliedRows are the rows of applySQL.
type appliedRows struct {
	applied []presence.StoredEvent // in seq order; Event set only for takeover tcpcleans
	held    int
}

// collectApplied reads the rows of applySQL.
func collectApplied(rows pgx.Rows, err error) (appliedRows, error) {
	var r appliedRows
	if err != nil {
		return r, err
	}
	var (
		e                                                  presence.StoredEvent
		clientID, clientIP, node, epoch, reason, successor *string
		eventTime, nodeSeq                                 *int64
	)
	_, err = pgx.ForEachRow(rows, []any{&e.Seq, &e.ChannelID, &e.Type, &e.AppliedAt,
		&clientID, &eventTime, &clientIP, &node, &epoch, &reason, &nodeSeq, &successor}, func() error {
		if e.Seq == 0 {
			r.held++
			return nil
		}
		if clientID != nil {
			e.ClientID, e.Time, e.ClientIP, e.Node, e.Epoch = *clientID, *eventTime, *clientIP, *node, *epoch
			e.Reason, e.NodeSeq, e.TakeoverBy = presence.Reason(*reason), uint64(*nodeSeq), *successor
		}
		r.applied = append(r.applied, e)
		e = presence.StoredEvent{}
		return nil
	})
	return r, err
}

// result completes the applied events with the events of the batch they
// are and counts the rest: of the n events given, those neither applied
// nor held were duplicates. An applied event not of the batch is a
// takeover tcpclean it released, complete from its row.
func (r appliedRows) result(batch []presence.Event, n int) ApplyResult {
	byKey := make(map[presence.Key]int, len(batch))
	for i, e := range batch {
		byKey[e.Key()] = i
	}
	released := 0
	for i, a := range r.applied {
		if j, ok := byKey[a.Key()]; ok {
			r.applied[i].Event = batch[j]
		} else {
			released++
		}
	}
	return ApplyResult{Applied: r.applied, Held: r.held, Duplicates: n - (len(r.applied) - released) - r.held, released: released}
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
	takeoverBys                  []string
	tlsVersions, tlsSubjects     []string
	protocolLevels               []*int16
	reasonCodes                  []*int16
}

func newColumns(batch []presence.Event) columns {
	n := len(batch)
	c := columns{
		channelIDs: make([]string, n), types: make([]string, n), clientIDs: make([]string, n),
		times: make([]int64, n), clientIPs: make([]string, n), nodes: make([]string, n), epochs: make([]string, n),
		reasons: make([]string, n), usernames: make([]string, n), keepalives: make([]int32, n), cleanSessions: make([]*bool, n),
		nodeSeqs: make([]int64, n), takeoverBys: make([]string, n), tlsVersions: make([]string, n), tlsSubjects: make([]string, n),
		protocolLevels: make([]*int16, n), reasonCodes: make([]*int16, n),
	}
	for i, e := range batch {
		c.channelIDs[i], c.types[i], c.clientIDs[i] = e.ChannelID, string(e.Type), e.ClientID
		c.times[i], c.clientIPs[i], c.nodes[i], c.epochs[i] = e.Time, e.ClientIP, e.Node, e.Epoch
		c.reasons[i], c.usernames[i] = string(e.Reason), e.Username
		c.keepalives[i], c.cleanSessions[i] = int32(e.Keepalive), e.CleanSession
		c.nodeSeqs[i], c.takeoverBys[i] = int64(e.NodeSeq), e.TakeoverBy
		c.tlsVersions[i], c.tlsSubjects[i] = e.TLSVersion, e.TLSClientSubject
		if e.ProtocolLevel != 0 {
			level := int16(e.ProtocolLevel)
			c.protocolLevels[i] = &level
		}
		if e.ReasonCode != nil {
			code := int16(*e.ReasonCode)
			c.reasonCodes[i] = &code
		}
	}
	return c
}

// applyStatement returns the statement that applies batch and its
// arguments: source is the events' source; hold holds back takeover
// tcpcleans whose successor is not stored yet.
func applyStatement(batch []presence.Event, source string, hold bool) (string, []any) {
	c := newColumns(batch)
	args := []any{c.channelIDs, c.types, c.clientIDs, c.times, c.clientIPs, c.nodes, c.epochs,
		c.reasons, c.usernames, c.keepalives, c.cleanSessions, c.nodeSeqs, source, c.takeoverBys,
		c.tlsVersions, c.tlsSubjects, c.protocolLevels, c.reasonCodes}
	if hold && slices.ContainsFunc(batch, func(e presence.Event) bool { return e.TakeoverBy != "" }) {
		return applySQL, append(args, true)
	}
	return applyNoHoldSQL, args
}
