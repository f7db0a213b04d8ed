package pgstore

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/presenced/presenced/presence"
)

// MaxTakeoverHold bounds how long a takeover's tcpclean is held for its
// successor (see applySQL): the broker records the successor's connect
// before the close, so it normally arrives within the pipeline's lag; one
// that never comes (a broker that lost it, an ingested close) must not
// keep the old channel open for good.
const MaxTakeoverHold = 10 * time.Minute

// ReleaseTakeovers applies, as they are, the takeover tcpcleans held for
// longer than olderThan, and returns the events newly stored. Concurrent
// callers are safe: each held row is taken by one of them.
func (s *Store) ReleaseTakeovers(ctx context.Context, olderThan time.Duration) ([]presence.StoredEvent, error) {
	released, err := s.releaseHeld(ctx, `held_at < now() - $1 * interval '1 millisecond'`, olderThan.Milliseconds())
	if err != nil {
		return nil, storeErr("release held takeovers", err)
	}
	s.takeovers.releasedByAge.Add(uint64(len(released)))
	return released, nil
}

// releaseHeld applies, as they are, the held takeover tcpcleans selected
// by where (a condition on takeovers_pending, with args), under the
// exclusive apply lock, and returns the events newly stored.
func (s *Store) releaseHeld(ctx context.Context, where string, args ...any) ([]presence.StoredEvent, error) {
	var released []presence.StoredEvent
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		released = released[:0]
		if _, err := tx.Exec(ctx, applyExclusiveLockSQL, applyLockKey); err != nil {
			return err
		}
		rows, _ := tx.Query(ctx, `
			DELETE FROM takeovers_pending WHERE `+where+`
			RETURNING channel_id, client_id, time, client_ip, node, epoch, reason, node_seq, takeover_by, reason_code, source`,
			args...)
		var (
			e          presence.Event
			nodeSeq    int64
			reasonCode *int16
			source     string
		)
		// Each held event keeps the source it arrived by.
		bySource := map[string][]presence.Event{}
		_, err := pgx.ForEachRow(rows, []any{&e.ChannelID, &e.ClientID, &e.Time, &e.ClientIP, &e.Node, &e.Epoch,
			&e.Reason, &nodeSeq, &e.TakeoverBy, &reasonCode, &source}, func() error {
			e.Type, e.NodeSeq, e.ReasonCode = presence.EventTCPClean, uint64(nodeSeq), nil
			if reasonCode != nil {
				code := int(*reasonCode)
				e.ReasonCode = &code
			}
			bySource[source] = append(bySource[source], e)
			return nil
		})
		if err != nil {
			return err
		}
		for source, events := range bySource {
			batch := dedupe(events)
			sql, args := applyStatement(batch, source, false)
			applied, err := collectApplied(tx.Query(ctx, sql, args...))
			if err != nil {
				return err
			}
			released = append(released, applied.result(batch, len(batch)).Applied...)
		}
		return nil
	})
	return released, err
}

// TakeoverStats count the takeover tcpcleans this Store held back and
// released, for metrics.
type TakeoverStats struct {
	Held          uint64 // held for a successor not stored yet
	Released      uint64 // applied when their successor's first event was stored
	ReleasedByAge uint64 // applied after MaxTakeoverHold without a successor
}

type takeoverCounters struct{ held, released, releasedByAge atomic.Uint64 }

// TakeoverStats returns the counters of this Store (this process).
func (s *Store) TakeoverStats() TakeoverStats {
	return TakeoverStats{Held: s.takeovers.held.Load(), Released: s.takeovers.released.Load(),
		ReleasedByAge: s.takeovers.releasedByAge.Load()}
}

// HeldTakeovers counts the takeover tcpcleans held for their successor.
func (s *Store) HeldTakeovers(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, "SELECT count(*) FROM takeovers_pending").Scan(&n)
	return n, storeErr("count held takeovers", err)
}
