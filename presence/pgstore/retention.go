package pgstore

import (
	"context"
	"time"

	"github.com/presenced/presenced/presence"
)

// pruneBatch bounds the channels deleted per transaction, so retention
// never holds long locks or writes a huge transaction.
const pruneBatch = 5000

// pruneSQL deletes a batch of channels closed (tcpclean applied) before $1,
// with their events. Open channels have no tcpclean and are never chosen.
const pruneSQL = `
WITH doomed AS (
    SELECT channel_id FROM channels
    WHERE has_tcpclean AND closed_at < $1
    ORDER BY closed_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), gone_events AS (
    DELETE FROM events WHERE channel_id IN (SELECT channel_id FROM doomed)
)
DELETE FROM channels WHERE channel_id IN (SELECT channel_id FROM doomed)`

// Prune deletes the channels whose tcpclean the store applied before
// closedBefore, and their events, and returns how many channels it deleted.
// Retention is measured on the store's clock (closed_at, the applied_at of
// the tcpclean), not on the broker's, so a broker with a wrong clock cannot
// make fresh evidence disappear. Open channels are never pruned.
//
// An event redelivered after its channel was pruned is stored again as if
// new; a redelivered connect would then reopen the channel. Keep retention
// far longer than the transport's redelivery window (days, not minutes).
func (s *Store) Prune(ctx context.Context, closedBefore time.Time) (int64, error) {
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, pruneSQL, closedBefore, pruneBatch)
		if err != nil {
			return total, storeErr("prune closed channels", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < pruneBatch {
			return total, nil
		}
	}
}

// RejectEvent parks a message that could not be decoded or validated.
// source says where it came from; reason why it was rejected.
func (s *Store) RejectEvent(ctx context.Context, source string, raw []byte, reason string) error {
	if raw == nil {
		raw = []byte{}
	}
	_, err := s.pool.Exec(ctx, "INSERT INTO rejected_events (source, raw, reason) VALUES ($1, $2, $3)", source, raw, reason)
	return storeErr("park rejected event", err)
}

// RejectedEvents lists the most recently rejected messages, newest first.
// limit is clamped to DefaultLimit/MaxLimit.
func (s *Store) RejectedEvents(ctx context.Context, limit int) ([]presence.RejectedEvent, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, received_at, source, raw, reason FROM rejected_events
		ORDER BY id DESC LIMIT $1`, clampLimit(limit))
	if err != nil {
		return nil, storeErr("list rejected events", err)
	}
	rejected := []presence.RejectedEvent{}
	for rows.Next() {
		var r presence.RejectedEvent
		if err := rows.Scan(&r.ID, &r.ReceivedAt, &r.Source, &r.Raw, &r.Reason); err != nil {
			rows.Close()
			return nil, storeErr("list rejected events", err)
		}
		rejected = append(rejected, r)
	}
	return rejected, storeErr("list rejected events", rows.Err())
}

// PruneRejected deletes rejected messages received before before and
// returns how many it deleted.
func (s *Store) PruneRejected(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, "DELETE FROM rejected_events WHERE received_at < $1", before)
	return tag.RowsAffected(), storeErr("prune rejected events", err)
}
