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

// Online, OnlineMany and Snapshot answer straight from the store, with
// none of the view's caching: the tests' account of what the store holds.
// presenced itself answers from its view (presence.View), which starts
// from snapshot and follows the feed.

// onlineSQL counts a client's open channels with an index-only scan of the
// partial index channels_open_client, and finds the time of its newest
// event at the end of events_client_time_seq.
const onlineSQL = `
SELECT o.open_channels, o.since, (SELECT max(time) FROM events WHERE client_id = $1)
FROM (SELECT count(*) AS open_channels, min(connect_at) AS since
      FROM channels WHERE client_id = $1 AND has_connect AND NOT has_tcpclean) o`

// Online answers whether clientID is online: it is if any of its channels
// has a connect and no tcpclean. A client the store never heard of is
// offline. State is online or offline (StateUnknown, for channels on a lost
// node, is decided by the caller's node tracking).
func (s *Store) Online(ctx context.Context, clientID string) (presence.Status, error) {
	var (
		open        int
		since, last *int64
	)
	if err := s.pool.QueryRow(ctx, onlineSQL, clientID).Scan(&open, &since, &last); err != nil {
		return presence.Status{}, storeErr("look up online status", err)
	}
	return status(clientID, open, since, last), nil
}

const onlineManySQL = `
SELECT o.open_channels, o.since, e.last
FROM unnest($1::text[]) WITH ORDINALITY AS q(client_id, ord)
LEFT JOIN (SELECT client_id, count(*) AS open_channels, min(connect_at) AS since
           FROM channels WHERE client_id = ANY($1) AND has_connect AND NOT has_tcpclean
           GROUP BY client_id) o ON o.client_id = q.client_id
LEFT JOIN LATERAL (SELECT max(time) AS last FROM events WHERE events.client_id = q.client_id) e ON true
ORDER BY q.ord`

// OnlineMany answers Online for several clients in one query; the statuses
// are in the order of clientIDs (repeats included).
func (s *Store) OnlineMany(ctx context.Context, clientIDs []string) ([]presence.Status, error) {
	if len(clientIDs) == 0 {
		return []presence.Status{}, nil
	}
	statuses := make([]presence.Status, 0, len(clientIDs))
	rows, _ := s.pool.Query(ctx, onlineManySQL, clientIDs)
	var (
		open        *int
		since, last *int64
	)
	_, err := pgx.ForEachRow(rows, []any{&open, &since, &last}, func() error {
		n := 0
		if open != nil {
			n = *open
		}
		statuses = append(statuses, status(clientIDs[len(statuses)], n, since, last))
		return nil
	})
	if err != nil {
		return nil, storeErr("look up online status", err)
	}
	return statuses, nil
}

func status(clientID string, open int, since, last *int64) presence.Status {
	st := presence.Status{ClientID: clientID, Online: open > 0, State: presence.StateOffline, OpenChannels: open}
	if st.Online {
		st.State = presence.StateOnline
		st.Since = timePtr(since)
	}
	st.LastEventAt = timePtr(last)
	return st
}

// Snapshot reads what a view starts from (snapshot) on the pool.
func (s *Store) Snapshot(ctx context.Context) (states []presence.ChannelState, asOfSeq int64, err error) {
	states, asOfSeq, err = s.snapshot(ctx, s.pool)
	return states, asOfSeq, storeErr("read view snapshot", err)
}
