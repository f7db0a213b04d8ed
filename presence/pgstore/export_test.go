package pgstore

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/presenced/presenced/presence"
)

// The queries whose plans the tests check.
const (
	OnlineSQL     = onlineSQL
	OnlineManySQL = onlineManySQL
	ChannelsSQL   = channelsSQL
)

// BeginApply starts an Apply transaction of events on tx and leaves it
// open, as a slow writer would: the tests commit or roll it back. It
// returns the seqs the events took.
func (s *Store) BeginApply(ctx context.Context, tx pgx.Tx, events []presence.Event) ([]int64, error) {
	batch := dedupe(events)
	if _, err := tx.Exec(ctx, applySharedLockSQL, applyLockKey); err != nil {
		return nil, err
	}
	sql, args := applyStatement(batch, sourceBroker, true)
	rows, err := collectApplied(tx.Query(ctx, sql, args...))
	var seqs []int64
	for _, a := range rows.applied {
		seqs = append(seqs, a.Seq)
	}
	return seqs, err
}

// Watermark returns the feed's watermark: every seq up to final is final;
// pending is the newest seq sampled but not yet known final (0: none).
func (s *Store) Watermark() (final, pending int64) {
	w := &s.watermark
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) > 0 {
		pending = w.pending[len(w.pending)-1].seq
	}
	return w.final, pending
}

// WriteConflicts counts the Apply transactions of this Store retried after
// a conflict with a concurrent writer.
func (s *Store) WriteConflicts() uint64 { return s.writes.conflicts.Load() }

// ApplyStatement is the statement and arguments Apply sends for events.
func ApplyStatement(events []presence.Event) (string, []any) {
	return applyStatement(dedupe(events), sourceBroker, true)
}

// ChangesSince returns up to limit channels changed after seq afterSeq, in
// seq order, each in its current state, as a Follower reads them
// (changesSince).
func (s *Store) ChangesSince(ctx context.Context, afterSeq int64, limit int) ([]presence.ChannelState, error) {
	states, _, _, err := s.changesSince(ctx, s.pool, afterSeq, limit, true)
	return states, storeErr("read channel feed", err)
}
