package webhook

import (
	"context"

	"github.com/presenced/presenced/presence"
)

// FeedFunc reads the store's webhook feed: up to limit changes after seq
// afterSeq, channel changes and node presence changes together, each list
// in seq order, all of them final (the feed's watermark).
type FeedFunc func(ctx context.Context, afterSeq int64, limit int) (FeedBatch, error)

// FeedBatch is one read of the feed. UptoSeq is the seq up to which the
// read is complete: the cursor moves there once the batch is delivered,
// even when both lists are empty.
type FeedBatch struct {
	Channels []presence.ChannelState
	Nodes    []NodeChange
	// Spells are the nodes' silent spells that overlap the batch.
	Spells  []SilentSpell
	UptoSeq int64
}

// SilentSpell is a time a node spent silent, in feed seqs: from StartSeq
// to EndSeq (0 while it lasts), when it reported again, was declared lost
// or started a new epoch. SilentSince is in ms, the store's clock.
type SilentSpell struct {
	Node, Epoch      string
	SilentSince      int64
	StartSeq, EndSeq int64
}

// NodeChange is a client's presence changed by its broker node rather than
// by a channel: State is unknown when the node missed its lease (every
// open channel of the client is on a silent node: what the API answers
// then), online when the node reported again before being declared lost.
// When it is lost instead, its channels close (reason node_lost) and the
// offline change follows from the channel feed.
type NodeChange struct {
	Seq      int64
	ClientID string
	Node     string
	Epoch    string
	State    presence.State
	// SilentSince is when the node went silent, RecordedAt when the store
	// decided the change (ms, the store's clock).
	SilentSince, RecordedAt int64
}

// Causes of node changes, in Change.Cause.
const (
	CauseNodeSilent = "node_silent"
	CauseNodeBack   = "node_back"
)

// batchChanges turns one read of the feed into the presence changes a hook
// receives, in seq order: the channel changes (presenceChanges) merged
// with the node changes, each with its own seq and so its own id.
func batchChanges(ctx context.Context, hook string, afterSeq int64, b FeedBatch, around ChannelsAroundFunc) ([]Change, error) {
	channels, err := presenceChanges(ctx, hook, afterSeq, b.Channels, newSpellIndex(b.Spells), around)
	if err != nil {
		return nil, err
	}
	if len(b.Nodes) == 0 {
		return channels, nil
	}
	out := make([]Change, 0, len(channels)+len(b.Nodes))
	i := 0
	for _, n := range b.Nodes {
		for i < len(channels) && channels[i].Seq < n.Seq {
			out = append(out, channels[i])
			i++
		}
		out = append(out, nodeChange(hook, n))
	}
	return append(out, channels[i:]...), nil
}

func nodeChange(hook string, n NodeChange) Change {
	c := Change{ID: changeID(hook, n.Seq), Seq: n.Seq, ClientID: n.ClientID, State: string(n.State),
		Online: n.State == presence.StateOnline, Node: n.Node, Epoch: n.Epoch,
		SilentNode: n.Node, SilentSince: n.SilentSince, Cause: CauseNodeSilent, Time: n.RecordedAt}
	if c.Online {
		c.Cause = CauseNodeBack
	}
	return c
}
