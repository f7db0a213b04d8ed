package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/presenced/presenced/presence"
)

// pruneBatch bounds the channels deleted per transaction, so retention
// never holds long locks or writes a huge transaction.
const pruneBatch = 5000

// pruneChannelsSQL deletes a batch of channels closed (tcpclean applied)
// before $1. Open channels have no tcpclean and are never chosen. Their
// events go with their day partitions (Prune).
const pruneChannelsSQL = `
DELETE FROM channels WHERE channel_id IN (
    SELECT channel_id FROM channels
    WHERE has_tcpclean AND closed_at < $1
    ORDER BY closed_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED)`

// Pruned is what one Prune removed.
type Pruned struct {
	Channels   int64 // closed channels deleted
	Partitions int64 // day partitions of events dropped
	// Kept counts the events copied forward out of dropped partitions:
	// those of open channels and of channels closed inside the window.
	Kept int64
}

// Prune applies retention: it deletes the channels whose tcpclean the
// store applied before closedBefore, then drops every day partition of
// the event history whose whole day is before closedBefore, keeping
// (copying forward) the events of the channels that still exist, and
// finally deletes what fell into the default partition before it for
// channels that no longer exist. Open channels and their events are never
// removed. History thus goes a day at a time: an event is removed within
// a day after it passes the retention.
//
// Retention is measured on the store's clock (closed_at, the applied_at of
// the tcpclean; part_day), not on the broker's, so a broker with a wrong
// clock cannot make fresh evidence disappear.
//
// An event redelivered after its channel was pruned is stored again as if
// new; a redelivered connect would then reopen the channel. Keep retention
// far longer than the transport's redelivery window (days, not minutes).
func (s *Store) Prune(ctx context.Context, closedBefore time.Time) (Pruned, error) {
	var p Pruned
	for {
		tag, err := s.pool.Exec(ctx, pruneChannelsSQL, closedBefore, pruneBatch)
		if err != nil {
			return p, storeErr("prune closed channels", err)
		}
		p.Channels += tag.RowsAffected()
		if tag.RowsAffected() < pruneBatch {
			break
		}
	}
	parts, err := dayPartitions(ctx, s.pool)
	if err != nil {
		return p, storeErr("list event partitions", err)
	}
	// Today's partition receives what is copied forward: never drop it
	// (nor a later one), whatever closedBefore says.
	var today time.Time
	if err := s.pool.QueryRow(ctx, "SELECT (now() AT TIME ZONE 'UTC')::date").Scan(&today); err != nil {
		return p, storeErr("read the store's day", err)
	}
	for _, part := range parts {
		if part.day.AddDate(0, 0, 1).After(closedBefore) || !part.day.Before(today) {
			break // oldest first: the rest are newer
		}
		kept, err := s.dropPartition(ctx, part, closedBefore)
		if err != nil {
			return p, err
		}
		p.Partitions++
		p.Kept += kept
	}
	_, err = s.pool.Exec(ctx, `DELETE FROM events_default e WHERE e.applied_at < $1
		AND NOT EXISTS (SELECT 1 FROM channels c WHERE c.channel_id = e.channel_id)`, closedBefore)
	if err != nil {
		return p, storeErr("prune the default event partition", err)
	}
	// A channel that became prunable after the first step (its tcpclean
	// committed meanwhile, or it was locked) had its events left out of
	// the copy forward above: delete it now, so that no channel stays
	// without its history.
	tag, err := s.pool.Exec(ctx, pruneChannelsSQL, closedBefore, pruneBatch)
	p.Channels += tag.RowsAffected()
	return p, storeErr("prune closed channels", err)
}

// maxRejectedBytes is how much of a rejected message is kept: enough to
// see what was wrong with an event (at most 8 KiB) or the start of a
// larger message, not a copy of whatever a sender put on the topic.
const maxRejectedBytes = 64 << 10

// RejectEvent parks a message that could not be decoded or validated.
// source says where it came from; reason why it was rejected. Of a message
// larger than maxRejectedBytes its start is kept, and the reason says so.
func (s *Store) RejectEvent(ctx context.Context, source string, raw []byte, reason string) error {
	if raw == nil {
		raw = []byte{}
	}
	if len(raw) > maxRejectedBytes {
		reason = fmt.Sprintf("%s (the first %d of its %d bytes are kept)", reason, maxRejectedBytes, len(raw))
		raw = raw[:maxRejectedBytes]
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
