package pgstore

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/presenced/presenced/presence"
)

// ownedSQL finds the events of a batch that belong to a broker node the
// store knows (a row in nodes, whatever its state): the event names such
// a node, or its channel is stored with one. It returns the index of each
// such event (from 0) and the node. Both tables are small lookups per
// event: channels by primary key, nodes by primary key.
const ownedSQL = `
SELECT t.i - 1, n.node
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(channel_id, node, i)
LEFT JOIN channels c ON c.channel_id = t.channel_id
JOIN nodes n ON n.node = t.node OR n.node = c.node
ORDER BY t.i, n.node`

// Ingest stores events that arrived through the API (POST /events: other
// brokers' webhooks, operators) as Apply does — validated before,
// idempotent, all or none — with two rules that keep such events from
// overruling a broker that reports itself (DESIGN.md, invariant 4):
//
//   - An event that names a broker node the store knows (one that ever
//     reported itself: alive, silent, stopped or lost), or whose channel
//     belongs to one, is refused, and with it the whole batch: only that
//     node's own reports and the store's lease rules open and close its
//     channels. A lost node is no exception: it may come back with the
//     same epoch, and a connect ingested for it meanwhile would never be
//     closed by anything. The error has the code "conflict" (the API
//     answers 409) and names each event and its node.
//   - Every accepted event names a node that reported nothing, so its
//     nodeSeq is stored as 0: an ingested nodeSeq never exceeds what its
//     node reported, and a channel-set report of that node, should one
//     ever come, closes what it does not hold.
//
// The check runs in the transaction that stores the events, under the
// apply lock, so no Apply commits between them. Ingested events are
// stored with source "api".
func (s *Store) Ingest(ctx context.Context, events []presence.Event) (ApplyResult, error) {
	if len(events) == 0 {
		return ApplyResult{}, nil
	}
	channelIDs, nodes := make([]string, len(events)), make([]string, len(events))
	for i, e := range events {
		channelIDs[i], nodes[i] = e.ChannelID, e.Node
	}
	batch := dedupe(events)
	for i := range batch {
		batch[i].NodeSeq = 0
	}
	var applied appliedRows
	var owned []ownedEvent
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, applyExclusiveLockSQL, applyLockKey); err != nil {
			return err
		}
		rows, _ := tx.Query(ctx, ownedSQL, channelIDs, nodes)
		var err error
		owned, err = pgx.CollectRows(rows, pgx.RowToStructByPos[ownedEvent])
		if err != nil || len(owned) > 0 {
			return err
		}
		sql, args := applyStatement(batch, sourceAPI, true)
		applied, err = collectApplied(tx.Query(ctx, sql, args...))
		return err
	})
	if err != nil {
		return ApplyResult{}, storeErr("ingest events", err)
	}
	if len(owned) > 0 {
		return ApplyResult{}, ownedError(owned, events)
	}
	result := applied.result(batch, len(events))
	s.countTakeovers(result)
	return result, nil
}

// ownedEvent is an event of an Ingest batch that belongs to a known node.
type ownedEvent struct {
	Index int
	Node  string
}

// ingestConflict is the error of a batch refused for events of known
// nodes: a domain error (code "conflict", a message naming the nodes) and
// one field problem per event, "[i].node" or "[i].channelId".
type ingestConflict struct {
	domain   *presence.Error
	problems presence.Problems
}

func (e *ingestConflict) Error() string   { return e.domain.Error() }
func (e *ingestConflict) Unwrap() []error { return []error{e.domain, e.problems} }

func ownedError(owned []ownedEvent, events []presence.Event) error {
	var problems presence.Problems
	var nodes []string
	seen := map[int]bool{}
	for _, o := range owned {
		if seen[o.Index] {
			continue
		}
		seen[o.Index] = true
		e := events[o.Index]
		p := &presence.Error{Code: presence.ECONFLICT, Field: fmt.Sprintf("[%d].node", o.Index),
			Message: fmt.Sprintf("node %q is a broker node that reports itself: only its own reports open or close its channels", o.Node)}
		if e.Node != o.Node {
			p.Field = fmt.Sprintf("[%d].channelId", o.Index)
			p.Message = fmt.Sprintf("channel %q belongs to broker node %q, which reports itself: only its own reports open or close it", e.ChannelID, o.Node)
		}
		problems = append(problems, p)
		if !slices.Contains(nodes, o.Node) {
			nodes = append(nodes, o.Node)
		}
	}
	which := "broker node " + nodes[0] + ", which reports itself"
	if len(nodes) > 1 {
		which = "broker nodes " + strings.Join(nodes, ", ") + ", which report themselves"
	}
	return &ingestConflict{
		domain: presence.Errorf(presence.ECONFLICT, "%d of %d events belong to %s: ingested events may not open or close their channels; nothing was stored",
			len(problems), len(events), which),
		problems: problems,
	}
}
