package pgstore

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/presenced/presenced/presence"
)

// querier is what the feed queries run on: a connection or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// feedColumns are the columns of a channel row that make a
// presence.ChannelState, in the order scanStates reads them. A channel's
// newest event time is the greatest of its per-event times (one event of
// each type per channel).
const feedColumns = `channel_id, client_id, coalesce(client_ip, ''), coalesce(username, ''), coalesce(node, ''), coalesce(epoch, ''),
    has_connect AND NOT has_tcpclean, coalesce(connect_at, 0), coalesce(tcpclean_at, 0),
    coalesce(greatest(connect_at, disconnect_at, tcpclean_at), 0), coalesce(reason, ''), last_seq`

// changesSQL reads the feed: every channel changed after a cursor ($4) up
// to the watermark (horizonSQL, $1–$3), in seq order (every statement that
// changes a channel sets last_seq to its newest seq), by a range scan of
// channels_last_seq (migration 0002). Every row it returns is final: no
// transaction still running can commit a change at or below its seq.
const changesSQL = `SELECT ` + feedColumns + ` FROM channels WHERE last_seq > $4 AND last_seq <= ` + horizonSQL + `
    ORDER BY last_seq LIMIT $5`

// feedConn is what the feed is read on: the pool or a connection of its
// own, never a transaction (a sample must commit before the snapshot that
// judges it).
type feedConn interface {
	querier
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// changesSince takes a sample for the watermark, then reads the watermark
// and the changes up to it in one round trip: the watermark first, in its
// own statement, so that it is learnt even when no channel changed; the
// changes' statement, with a later snapshot, may only find it higher.
//
// With holdTakeovers, a takeover close may be held back for a later read
// (holdBackTakeovers); held says one was. full says the read reached
// limit: more changes are final already, and the caller reads again at
// once (a cut page is shorter than limit, and still full).
func (s *Store) changesSince(ctx context.Context, q feedConn, afterSeq int64, limit int, holdTakeovers bool) (states []presence.ChannelState, held, full bool, err error) {
	w := &s.watermark
	if _, err := w.sample(ctx, q); err != nil {
		return nil, false, false, err
	}
	limit = max(limit, 1)
	args := w.horizonArgs()
	var b pgx.Batch
	b.Queue("SELECT "+horizonSQL, args...)
	b.Queue(changesSQL, append(args, afterSeq, limit)...)
	results := q.SendBatch(ctx, &b)
	defer results.Close()
	var final int64
	if err := results.QueryRow().Scan(&final); err != nil {
		return nil, false, false, err
	}
	rows, _ := results.Query()
	if states, err = scanStates(rows, nil); err != nil {
		return nil, false, false, err
	}
	if len(states) > 0 {
		final = max(final, states[len(states)-1].Seq)
	}
	if err := results.Close(); err != nil {
		return nil, false, false, err
	}
	w.advance(final)
	full = len(states) >= limit
	if !holdTakeovers || len(states) == 0 {
		return states, false, full, nil
	}
	kept, err := s.holdBackTakeovers(ctx, q, states)
	if err != nil {
		return nil, false, false, err
	}
	if full {
		// What a full page holds back is final already and comes in the
		// next read, which starts at the cut; one cut to nothing would
		// read the same page again, so it is handed on whole.
		if len(kept) == 0 {
			return states, false, true, nil
		}
		return kept, false, true, nil
	}
	return kept, len(kept) < len(states), false, nil
}

// holdBackTakeovers cuts states before the first takeover close of a
// client that has a channel changed after the watermark: that channel's
// state when the close was stored is not in the feed. The feed gives each
// channel's current row, and a row changed again by a commit above the
// watermark is left out of this read, even though its earlier change came
// before the close. In a takeover chain X → Y → Z that was Y, opened
// before X closed: the view saw X close with no successor and showed the
// client offline until Y and Z came (TestTakeoversNeverShowOffline caught
// it under load; TestTakeoverChainNeverShowsOffline reproduces it). Held
// back, the close comes in a later read together with the client's newer
// channels, once they are final, and the view sees the successor in the
// same batch.
//
// Of a page that was not full, every row changed after the last of states
// is above the watermark; of a full page, it may only be beyond the page.
// Either way the close waits for it.
func (s *Store) holdBackTakeovers(ctx context.Context, q querier, states []presence.ChannelState) ([]presence.ChannelState, error) {
	var clients []string
	for _, st := range states {
		if isTakeoverClose(st) {
			clients = append(clients, st.ClientID)
		}
	}
	if len(clients) == 0 {
		return states, nil
	}
	rows, err := q.Query(ctx, newerChannelsSQL, clients, states[len(states)-1].Seq)
	if err != nil {
		return nil, err
	}
	newer, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(newer) == 0 {
		return states, err
	}
	return states[:takeoverSafePrefix(states, newer)], nil
}

// takeoverSafePrefix returns the length of the longest prefix of states
// (in seq order) after which no client is left closed by a takeover whose
// successor the prefix lacks: for every takeover close in the prefix,
// every row of its client in states comes within the prefix too, and the
// client is not one of newer (it has a row changed after states).
//
// Cutting before the first close of a newer client is not enough: the cut
// also moves the end of the read, and a takeover close of another client
// before the cut whose successor rows come after it would be handed on
// alone (TestTakeoversNeverShowOfflineThroughRocketMQ caught this under
// load; TestHoldBackKeepsOtherTakeoversWithTheirSuccessors reproduces it).
func takeoverSafePrefix(states []presence.ChannelState, newer []string) int {
	const beyond = int64(math.MaxInt64) // a row changed after states
	lastOf := make(map[string]int64)    // client → its newest row's seq in states
	for _, st := range states {
		lastOf[st.ClientID] = st.Seq
	}
	for _, id := range newer {
		lastOf[id] = beyond
	}
	// needed is the seq a prefix must reach to hold the successors of the
	// takeover closes within it.
	safe, needed := 0, int64(0)
	for i, st := range states {
		if isTakeoverClose(st) {
			needed = max(needed, lastOf[st.ClientID])
		}
		if needed <= st.Seq {
			safe = i + 1
		}
	}
	return safe
}

// isTakeoverClose reports whether st is a channel closed by a takeover.
func isTakeoverClose(st presence.ChannelState) bool {
	return !st.Open && st.Reason == presence.ReasonTakeover
}

// newerChannelsSQL returns which of the clients $1 have a channel changed
// after seq $2 (channels_client_last_seq).
const newerChannelsSQL = `SELECT DISTINCT client_id FROM channels WHERE client_id = ANY($1::text[]) AND last_seq > $2`

var snapshotTx = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}

// snapshotConn is what a snapshot is read on: the pool or a connection.
type snapshotConn interface {
	feedConn
	BeginTx(ctx context.Context, txOptions pgx.TxOptions) (pgx.Tx, error)
}

// maxSnapshotWaits bounds how often snapshot waits for the seqs handed out
// before it to become final (about 2 s in all, see snapshot).
const maxSnapshotWaits = 25

// errNotFinal asks snapshot to read again, later.
var errNotFinal = errors.New("the newest seqs are not final yet")

// snapshot reads the state a view starts from, in one consistent
// snapshot: every open channel, then one closed state per online client
// that carries the client's newest event time and the start of its online
// period (ChannelID empty; snapshotClientsSQL), and asOfSeq, the feed's
// watermark in that snapshot: every change up to it is final and in the
// snapshot, so following the feed from asOfSeq misses nothing; it repeats
// at most changes the snapshot already holds (those after asOfSeq that
// were committed when it was read).
//
// Offline clients are not part of it: the view holds only some of them,
// and learns those from the feed and from lookups (presence.View). The
// snapshot's size, and the view's memory, follow the online set, not the
// history.
//
// Its asOfSeq is the watermark, so it
// first samples the seqs handed out so far and waits, a few milliseconds
// at most while writers are busy, for the sample to become final: a
// snapshot whose asOfSeq lagged far behind would make its follower read
// again everything after it. If the sample does not become final in time
// (a long transaction is running) the snapshot goes ahead with the
// watermark as it is, which costs only those repeats.
func (s *Store) snapshot(ctx context.Context, c snapshotConn) ([]presence.ChannelState, int64, error) {
	sampled, err := s.watermark.sample(ctx, c)
	if err != nil {
		return nil, 0, err
	}
	backoff := presence.Backoff{Min: time.Millisecond, Max: 100 * time.Millisecond}
	for {
		var (
			states  []presence.ChannelState
			asOfSeq int64
		)
		err := pgx.BeginTxFunc(ctx, c, snapshotTx, func(tx pgx.Tx) error {
			// The first statement fixes the transaction's snapshot: the
			// watermark is judged in the snapshot the states are read in.
			var err error
			if asOfSeq, err = s.watermark.readHorizon(ctx, tx); err != nil {
				return err
			}
			if asOfSeq < sampled && backoff.Failures() < maxSnapshotWaits {
				return errNotFinal
			}
			states, err = readSnapshot(ctx, tx, asOfSeq)
			return err
		})
		if !errors.Is(err, errNotFinal) {
			return states, asOfSeq, err
		}
		if err := backoff.Wait(ctx); err != nil {
			return nil, 0, err
		}
	}
}

// readSnapshot runs the queries of a snapshot as of asOfSeq; q must be a
// repeatable read transaction.
func readSnapshot(ctx context.Context, q querier, asOfSeq int64) ([]presence.ChannelState, error) {
	rows, _ := q.Query(ctx, `SELECT `+feedColumns+` FROM channels WHERE has_connect AND NOT has_tcpclean`)
	states, err := scanStates(rows, nil)
	if err != nil {
		return nil, err
	}
	// An online client's newest event may be on a closed channel (the
	// old channel of a takeover closes after the new one opened), and so
	// may the start of its online period (snapshotClientsSQL).
	rows, _ = q.Query(ctx, snapshotClientsSQL)
	var (
		clientID    string
		last, since *int64
	)
	_, err = pgx.ForEachRow(rows, []any{&clientID, &last, &since}, func() error {
		st := presence.ChannelState{ClientID: clientID, Seq: asOfSeq}
		if last != nil {
			st.LastEventAt = *last
		}
		if since != nil {
			st.OnlineSince = *since
		}
		states = append(states, st)
		return nil
	})
	return states, err
}

// snapshotClientsSQL returns, for each online client, the time of its
// newest event and when its current online period began: the start of the
// merged span of its channels (connect to tcpclean, broker time) that
// reaches now, as OnlineIntervals merges them. A view that followed the
// feed kept that start through takeovers and overlapping connections; a
// view loaded later learns it here, so that every API process, and one
// restarted, answers the same since.
//
// The walk back (spans) reads only the clients with a channel that closed
// after their earliest open channel connected (overlapped): for the
// others the period began at that connect. Their channels are ordered by
// end, open ones first; a channel that ended before every later-ending one
// began (gap) ends the walk, and the period began at the earliest connect
// before it. Channel id breaks ties, so that both windows see one order.
const snapshotClientsSQL = `
WITH online AS (
    SELECT client_id, min(connect_at) AS open_since
    FROM channels WHERE has_connect AND NOT has_tcpclean
    GROUP BY client_id
), per_client AS (
    SELECT o.client_id, o.open_since,
           max(greatest(c.connect_at, c.disconnect_at, c.tcpclean_at)) AS last_at,
           bool_or(c.has_connect AND c.has_tcpclean AND c.tcpclean_at >= o.open_since) AS overlapped
    FROM online o JOIN channels c ON c.client_id = o.client_id
    GROUP BY o.client_id, o.open_since
), spans AS (
    SELECT c.client_id, c.channel_id, c.connect_at,
           CASE WHEN c.has_tcpclean THEN c.tcpclean_at END AS ended_at
    FROM per_client p JOIN channels c ON c.client_id = p.client_id
    WHERE p.overlapped AND c.has_connect
), gaps AS (
    SELECT client_id, channel_id, connect_at, ended_at,
           coalesce(ended_at < min(connect_at) OVER (PARTITION BY client_id ORDER BY ended_at DESC NULLS FIRST, channel_id
                                                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), false) AS gap
    FROM spans
), walked AS (
    SELECT client_id, connect_at,
           bool_or(gap) OVER (PARTITION BY client_id ORDER BY ended_at DESC NULLS FIRST, channel_id
                              ROWS UNBOUNDED PRECEDING) AS past_gap
    FROM gaps
)
SELECT p.client_id, p.last_at, coalesce(w.since, p.open_since)
FROM per_client p
LEFT JOIN (SELECT client_id, min(connect_at) AS since FROM walked WHERE NOT past_gap GROUP BY client_id) w
       ON w.client_id = p.client_id`

func scanStates(rows pgx.Rows, states []presence.ChannelState) ([]presence.ChannelState, error) {
	var (
		s      presence.ChannelState
		reason string
	)
	_, err := pgx.ForEachRow(rows, []any{&s.ChannelID, &s.ClientID, &s.ClientIP, &s.Username, &s.Node, &s.Epoch,
		&s.Open, &s.ConnectAt, &s.TCPCleanAt, &s.LastEventAt, &reason, &s.Seq}, func() error {
		s.Reason = presence.Reason(reason)
		states = append(states, s)
		return nil
	})
	return states, err
}
