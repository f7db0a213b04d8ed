package pgstore

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/presenced/presenced/presence"
)

// NodePresenceChange is a client's presence changed by its broker node
// (migration 0015): State is unknown when the node went silent, online
// when it reported again before being lost.
type NodePresenceChange struct {
	Seq      int64
	ClientID string
	Node     string
	Epoch    string
	State    presence.State
	// SilentSince is when the node went silent, RecordedAt when the store
	// decided the change (ms, the store's clock).
	SilentSince, RecordedAt int64
}

// SilentSpell is a time a node spent silent, in seqs: from StartSeq to
// EndSeq (0 while it lasts). SilentSince is in ms, the store's clock.
type SilentSpell struct {
	Node, Epoch      string
	SilentSince      int64
	StartSeq, EndSeq int64
}

// WebhookBatch is one read of the webhook feed: the channel changes and
// the node presence changes after a cursor, each list in seq order, and
// UptoSeq: the seq up to which both were read completely, where the reader
// may move its cursor even when the lists are empty. Spells are the
// nodes' silent spells that overlap the batch.
type WebhookBatch struct {
	Channels []presence.ChannelState
	Nodes    []NodePresenceChange
	Spells   []SilentSpell
	UptoSeq  int64
}

const nodePresenceSQL = `SELECT seq, client_id, node, epoch, state,
    (extract(epoch FROM silent_since) * 1000)::bigint, (extract(epoch FROM recorded_at) * 1000)::bigint
    FROM node_presence_changes WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3`

// silentSpellsSQL returns the spells that began by the watermark and
// had not ended by the cursor. Whether a spell covers a seq at or below
// the watermark never changes once read: its start is final, and an end
// not visible yet can only come later, with a seq above the watermark.
const silentSpellsSQL = `SELECT node, epoch, (extract(epoch FROM silent_since) * 1000)::bigint, start_seq, coalesce(end_seq, 0)
    FROM node_silent_spells WHERE start_seq <= $2 AND (end_seq IS NULL OR end_seq > $1)`

const channelsUptoSQL = `SELECT ` + feedColumns + ` FROM channels WHERE last_seq > $1 AND last_seq <= $2 ORDER BY last_seq LIMIT $3`

// WebhookFeed reads up to limit changes (both kinds together) after seq
// afterSeq, under the feed's watermark exactly as changesSince: both lists
// are read up to one watermark, learnt first, so everything returned is
// final and nothing at or below UptoSeq is left unread in either table.
func (s *Store) WebhookFeed(ctx context.Context, afterSeq int64, limit int) (WebhookBatch, error) {
	b, err := s.webhookFeed(ctx, afterSeq, max(limit, 1))
	return b, storeErr("read webhook feed", err)
}

func (s *Store) webhookFeed(ctx context.Context, afterSeq int64, limit int) (WebhookBatch, error) {
	w := &s.watermark
	if _, err := w.sample(ctx, s.pool); err != nil {
		return WebhookBatch{}, err
	}
	var final int64
	if err := s.pool.QueryRow(ctx, "SELECT "+horizonSQL, w.horizonArgs()...).Scan(&final); err != nil {
		return WebhookBatch{}, err
	}
	w.advance(final)
	if final <= afterSeq {
		return WebhookBatch{UptoSeq: afterSeq}, nil
	}
	// Every seq ≤ final is final in the statement above's snapshot, so in
	// every later one too: the two reads may take separate snapshots.
	var batch pgx.Batch
	batch.Queue(channelsUptoSQL, afterSeq, final, limit)
	batch.Queue(nodePresenceSQL, afterSeq, final, limit)
	batch.Queue(silentSpellsSQL, afterSeq, final)
	results := s.pool.SendBatch(ctx, &batch)
	defer results.Close()
	rows, _ := results.Query()
	channels, err := scanStates(rows, nil)
	if err != nil {
		return WebhookBatch{}, err
	}
	rows, _ = results.Query()
	nodes, err := pgx.CollectRows(rows, pgx.RowToStructByPos[NodePresenceChange])
	if err != nil {
		return WebhookBatch{}, err
	}
	rows, _ = results.Query()
	spells, err := pgx.CollectRows(rows, pgx.RowToStructByPos[SilentSpell])
	if err != nil {
		return WebhookBatch{}, err
	}
	b := cutBatch(channels, nodes, final, limit)
	b.Spells = spells
	return b, results.Close()
}

// cutBatch keeps, of two lists read up to final with limit each, the first
// limit changes in seq order, and the seq up to which that is all of them:
// a full list may have left changes beyond its last seq unread.
func cutBatch(channels []presence.ChannelState, nodes []NodePresenceChange, final int64, limit int) WebhookBatch {
	upto := final
	if len(channels) == limit {
		upto = min(upto, channels[len(channels)-1].Seq)
	}
	if len(nodes) == limit {
		upto = min(upto, nodes[len(nodes)-1].Seq)
	}
	i, j := 0, 0
	for i+j < limit {
		switch {
		case i < len(channels) && channels[i].Seq <= upto && (j == len(nodes) || channels[i].Seq < nodes[j].Seq):
			i++
		case j < len(nodes) && nodes[j].Seq <= upto:
			j++
		default:
			return WebhookBatch{Channels: channels[:i], Nodes: nodes[:j], UptoSeq: upto}
		}
	}
	// limit changes taken: the batch ends at the last of them.
	last := int64(0)
	if i > 0 {
		last = channels[i-1].Seq
	}
	if j > 0 {
		last = max(last, nodes[j-1].Seq)
	}
	return WebhookBatch{Channels: channels[:i], Nodes: nodes[:j], UptoSeq: last}
}
