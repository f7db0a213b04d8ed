package pgstore

import (
	"context"
	"sync"

	"github.com/jackc/pgx/v5"
)

// The feed's watermark: how the change feed stays exact while several
// transactions apply events at once (migration 0012).
//
// Writers no longer commit in seq order: T1 may take seq 10, T2 seq 11,
// and T2 commit first. A reader that returned seq 11 and moved its cursor
// there would never see seq 10. So the feed returns a change only once it
// is final — once no transaction that could still commit a seq at or below
// it is running. The watermark is the highest seq known final; everything
// the feed returns is at or below it.
//
// How a seq becomes known final, exactly:
//
//  1. Every transaction that takes seqs takes its transaction id first
//     (the apply lock statements, applySharedLockSQL and
//     applyExclusiveLockSQL, call pg_current_xact_id() before the
//     statement that inserts events), and seqs come straight from the
//     sequence, one at a time (CACHE 1, migration 0012).
//  2. A sample reads L, the last seq handed out, and then takes a fresh
//     transaction id B, and commits (sampleSQL: one statement, B after L).
//     A transaction that took a seq ≤ L took it before L was read, and its
//     id before that, so its id is below B: ids are handed out in order.
//  3. In any snapshot taken after the sample committed whose xmin (the
//     oldest id still running) is ≥ B, every transaction with an id below B
//     has ended: its rows with seq ≤ L are committed and visible to that
//     snapshot, or rolled back and gone for good. L is final
//     (horizonSQL). (A running id at or above a snapshot's xmax is not in
//     its list, but none is below B: B's own transaction ended before the
//     snapshot, so the snapshot's xmax is above B.)
//
// Any transaction with an id holds the watermark back while it runs, not
// only writers (PostgreSQL does not say which running transaction will
// take seqs): a long writing transaction elsewhere in the database delays
// the feed until it ends, never breaks it. presenced's own transactions are
// short.
type feedWatermark struct {
	mu      sync.Mutex
	final   int64        // every seq ≤ final is final
	pending []feedSample // samples not yet known final, in seq order
}

// feedSample is a seq read and a transaction id taken after it: seq is
// final once every transaction below xid has ended.
type feedSample struct {
	seq int64
	xid int64
}

// maxPendingSamples bounds the samples kept while a long transaction holds
// the watermark back. Older samples become final first; a new one beyond
// the bound replaces the newest.
const maxPendingSamples = 16

// sampleSQL reads the last seq handed out and, when it is beyond the
// known watermark ($1), takes a transaction id after it: the CASE needs l,
// so the id is taken after the sequence was read. Without a new seq no id
// is taken, so an idle feed burns no transaction ids. The statement runs
// alone (autocommit): its transaction must have ended before the snapshot
// that judges the sample.
const sampleSQL = `
SELECT l, CASE WHEN l > $1 THEN pg_current_xact_id()::text::bigint END
FROM (SELECT last_value - CASE WHEN is_called THEN 0 ELSE 1 END AS l FROM events_seq_seq) s`

// horizonSQL is the watermark as of the statement's own snapshot: the
// known one ($1), or the highest sample seq ($2) whose id ($3) is at or
// below the snapshot's xmin. Parameters $1–$3.
const horizonSQL = `greatest($1::bigint, (
    SELECT max(p.seq) FROM unnest($2::bigint[], $3::bigint[]) AS p(seq, xid)
    WHERE p.xid <= pg_snapshot_xmin(pg_current_snapshot())::text::bigint))`

// sample takes a new sample on q (outside any transaction), adds it to the
// pending ones and returns its seq: the last seq handed out.
func (w *feedWatermark) sample(ctx context.Context, q querier) (int64, error) {
	w.mu.Lock()
	final := w.final
	w.mu.Unlock()
	var seq int64
	var xid *int64
	if err := q.QueryRow(ctx, sampleSQL, final).Scan(&seq, &xid); err != nil {
		return 0, err
	}
	if xid == nil {
		return seq, nil // nothing new since the watermark
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if seq <= w.final || (len(w.pending) > 0 && seq <= w.pending[len(w.pending)-1].seq) {
		return seq, nil // another caller sampled it already
	}
	if len(w.pending) == maxPendingSamples {
		w.pending = w.pending[:len(w.pending)-1]
	}
	w.pending = append(w.pending, feedSample{seq: seq, xid: *xid})
	return seq, nil
}

// behind reports whether seqs were handed out that are not known final
// yet: a reader should look again soon.
func (w *feedWatermark) behind() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending) > 0
}

// horizonArgs are the arguments $1–$3 of horizonSQL.
func (w *feedWatermark) horizonArgs() []any {
	w.mu.Lock()
	defer w.mu.Unlock()
	seqs, xids := make([]int64, len(w.pending)), make([]int64, len(w.pending))
	for i, p := range w.pending {
		seqs[i], xids[i] = p.seq, p.xid
	}
	return []any{w.final, seqs, xids}
}

// advance records that every seq ≤ final is final.
func (w *feedWatermark) advance(final int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if final <= w.final {
		return
	}
	w.final = final
	n := 0
	for n < len(w.pending) && w.pending[n].seq <= final {
		n++
	}
	w.pending = w.pending[n:]
}

// readHorizon runs horizonSQL in tx's snapshot (for a repeatable read
// transaction, the snapshot of all its statements) and records it.
func (w *feedWatermark) readHorizon(ctx context.Context, tx pgx.Tx) (int64, error) {
	var final int64
	if err := tx.QueryRow(ctx, "SELECT "+horizonSQL, w.horizonArgs()...).Scan(&final); err != nil {
		return 0, err
	}
	w.advance(final)
	return final, nil
}
