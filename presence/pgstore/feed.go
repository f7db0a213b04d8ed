package pgstore

import (
	"context"

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

// changesSQL reads the feed: every channel changed after a cursor, in commit
// order (Apply commits in seq order and sets last_seq to the channel's
// newest seq), by a range scan of channels_last_seq (migration 0002).
const changesSQL = `SELECT ` + feedColumns + ` FROM channels WHERE last_seq > $1 ORDER BY last_seq LIMIT $2`

// ChangesSince returns up to limit channels changed after seq afterSeq, in
// commit order, each in its current state.
func (s *Store) ChangesSince(ctx context.Context, afterSeq int64, limit int) ([]presence.ChannelState, error) {
	states, err := changesSince(ctx, s.pool, afterSeq, limit)
	return states, storeErr("read channel feed", err)
}

func changesSince(ctx context.Context, q querier, afterSeq int64, limit int) ([]presence.ChannelState, error) {
	rows, _ := q.Query(ctx, changesSQL, afterSeq, max(limit, 1))
	return scanStates(rows, nil)
}

// Snapshot returns the state a view starts from, read in one consistent
// snapshot: every open channel, then one closed state per online client
// that carries the client's newest event time (ChannelID empty), and
// asOfSeq, the highest last_seq in that snapshot. Since Apply commits in
// seq order, following the feed from asOfSeq misses nothing and repeats at
// most changes already seen.
//
// Offline clients are not part of it: the view holds only some of them,
// and learns those from the feed and from lookups (presence.View). The
// snapshot's size, and the view's memory, follow the online set, not the
// history.
func (s *Store) Snapshot(ctx context.Context) (states []presence.ChannelState, asOfSeq int64, err error) {
	err = pgx.BeginTxFunc(ctx, s.pool, snapshotTx, func(tx pgx.Tx) error {
		states, asOfSeq, err = snapshot(ctx, tx)
		return err
	})
	return states, asOfSeq, storeErr("read view snapshot", err)
}

var snapshotTx = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}

// newestSeq is the highest seq a snapshot reflects: every event's seq is at
// most its channel's last_seq, so the newest last_seq (an index lookup on
// channels_last_seq) bounds it; a channel pruned by retention was closed,
// and is no part of any view.
func newestSeq(ctx context.Context, q querier) (int64, error) {
	var seq int64
	err := q.QueryRow(ctx, "SELECT coalesce(max(last_seq), 0) FROM channels").Scan(&seq)
	return seq, err
}

// snapshot runs the queries of Snapshot; q must be a repeatable read
// transaction.
func snapshot(ctx context.Context, q querier) ([]presence.ChannelState, int64, error) {
	asOfSeq, err := newestSeq(ctx, q)
	if err != nil {
		return nil, 0, err
	}
	rows, _ := q.Query(ctx, `SELECT `+feedColumns+` FROM channels WHERE has_connect AND NOT has_tcpclean`)
	states, err := scanStates(rows, nil)
	if err != nil {
		return nil, 0, err
	}
	// An online client's newest event may be on a closed channel (the
	// old channel of a takeover closes after the new one opened).
	rows, _ = q.Query(ctx, `SELECT client_id, max(greatest(connect_at, disconnect_at, tcpclean_at))
		FROM channels
		WHERE client_id IN (SELECT client_id FROM channels WHERE has_connect AND NOT has_tcpclean)
		GROUP BY client_id`)
	var (
		clientID string
		last     *int64
	)
	_, err = pgx.ForEachRow(rows, []any{&clientID, &last}, func() error {
		if last != nil {
			states = append(states, presence.ChannelState{ClientID: clientID, LastEventAt: *last, Seq: asOfSeq})
		}
		return nil
	})
	return states, asOfSeq, err
}

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
