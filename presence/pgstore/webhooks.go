package pgstore

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// Webhook cursors (migration 0011): each hook's position in the change
// feed, and the lease that lets one process at a time deliver it.

// claimWebhookSQL takes or renews the lease of a hook for owner unless
// another owner holds an unexpired one. A hook seen for the first time
// starts at the head of the feed: it is told of changes from now on, not
// of the whole retained history.
const claimWebhookSQL = `
INSERT INTO webhook_cursors AS w (hook, cursor_seq, lease_owner, lease_until)
VALUES ($1, (` + webhookHeadSQL + `), $2, now() + $3 * interval '1 millisecond')
ON CONFLICT (hook) DO UPDATE
    SET lease_owner = excluded.lease_owner, lease_until = excluded.lease_until
    WHERE w.lease_owner = excluded.lease_owner OR w.lease_until < now()
RETURNING w.cursor_seq`

// ClaimWebhookCursor takes (or renews) the delivery lease of hook for
// owner for lease, and returns the hook's cursor. claimed is false while
// another owner holds an unexpired lease.
func (s *Store) ClaimWebhookCursor(ctx context.Context, hook, owner string, lease time.Duration) (cursor int64, claimed bool, err error) {
	err = s.pool.QueryRow(ctx, claimWebhookSQL, hook, owner, lease.Milliseconds()).Scan(&cursor)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, storeErr("claim webhook cursor", err)
	}
	return cursor, true, nil
}

// SaveWebhookCursor moves hook's cursor forward to cursor (never back) and
// renews owner's lease. held is false when owner no longer holds the
// lease (it expired and another process claimed it): the caller must stop
// delivering.
func (s *Store) SaveWebhookCursor(ctx context.Context, hook, owner string, cursor int64, lease time.Duration) (held bool, err error) {
	tag, err := s.pool.Exec(ctx, `
		UPDATE webhook_cursors
		SET cursor_seq = greatest(cursor_seq, $3), lease_until = now() + $4 * interval '1 millisecond', updated_at = now()
		WHERE hook = $1 AND lease_owner = $2 AND lease_until >= now()`, hook, owner, cursor, lease.Milliseconds())
	if err != nil {
		return false, storeErr("save webhook cursor", err)
	}
	return tag.RowsAffected() == 1, nil
}

// ReleaseWebhookCursor ends owner's lease of hook, so that another process
// may take the hook over at once rather than after the lease.
func (s *Store) ReleaseWebhookCursor(ctx context.Context, hook, owner string) error {
	_, err := s.pool.Exec(ctx, `UPDATE webhook_cursors SET lease_until = '-infinity' WHERE hook = $1 AND lease_owner = $2`, hook, owner)
	return storeErr("release webhook cursor", err)
}

// webhookHeadSQL is the newest seq of what webhooks follow: channel
// changes, node presence changes (two index lookups) and the nodes' silent
// spells (a few rows per node).
const webhookHeadSQL = `SELECT greatest((SELECT coalesce(max(last_seq), 0) FROM channels),
    (SELECT coalesce(max(seq), 0) FROM node_presence_changes),
    (SELECT coalesce(max(greatest(start_seq, end_seq)), 0) FROM node_silent_spells))`

// FeedHead returns the newest seq of the webhook feed (WebhookFeed): a
// hook's lag is this minus its cursor.
func (s *Store) FeedHead(ctx context.Context) (int64, error) {
	var seq int64
	err := s.pool.QueryRow(ctx, webhookHeadSQL).Scan(&seq)
	return seq, storeErr("read feed head", err)
}

// ChannelSeqs is where a channel starts and ends in the feed: the seqs of
// its first and newest events.
type ChannelSeqs struct {
	ClientID, ChannelID string
	FirstSeq, LastSeq   int64
	Open                bool
	Node                string
}

// ChannelsAround returns, for clientIDs, every open channel and every
// channel that changed after afterSeq and began by uptoSeq: the channels
// that may have been open at some point of the feed between the two
// (from channels_open_client and channels_client_last_seq). It tells
// whether a client had another channel open when one of its channels
// changed.
func (s *Store) ChannelsAround(ctx context.Context, clientIDs []string, afterSeq, uptoSeq int64) ([]ChannelSeqs, error) {
	if len(clientIDs) == 0 {
		return nil, nil
	}
	rows, _ := s.pool.Query(ctx, `SELECT client_id, channel_id, first_seq, last_seq, has_connect AND NOT has_tcpclean, coalesce(node, '')
		FROM channels
		WHERE client_id = ANY($1) AND ((has_connect AND NOT has_tcpclean) OR (last_seq > $2 AND first_seq <= $3))`,
		clientIDs, afterSeq, uptoSeq)
	channels, err := pgx.CollectRows(rows, pgx.RowToStructByPos[ChannelSeqs])
	return channels, storeErr("look up channels around the feed", err)
}
