package pgstore

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// Presence changes that no channel records (migration 0015): a broker node
// that misses its lease turns its clients "unknown" (the API's rule,
// presence.View.silentNodeOf: every open channel of the client is on a
// silent node), and the same node reporting again before it is lost turns
// them online again. The store records one row per client at the moment it
// decides the node's transition, in the transaction that decides it, so
// that webhooks can announce it exactly like a channel change.
//
// Both recording transactions take the apply lock exclusively first, as
// the release of held takeovers does: with no Apply running, the set of
// open channels they read is exactly the one before their seqs, so a
// client's rows fall in feed order with its channel changes (a close
// committed concurrently with a lower seq could otherwise follow the
// "unknown" it should precede). The statement that takes the lock also
// takes the transaction id before any seq, as the feed's watermark needs.
// The lock is taken only when a transition happened: a few times per node
// failure, never per heartbeat.

// nodeSpell is one silent spell of a node: silent_since names it.
type nodeSpell struct {
	Node, Epoch string
	SilentSince time.Time
}

// clientsAllOnSilentNodesSQL is the API's "unknown" rule in SQL: the
// client (c.client_id) has no open channel on a node that is not silent
// (state 'silent', as the API's view is told: a lost node's channels count
// as live until their node_lost closes land). A channel without a node is
// never on a silent one.
const clientsAllOnSilentNodesSQL = `NOT EXISTS (
    SELECT 1 FROM channels o
    WHERE o.client_id = c.client_id AND o.has_connect AND NOT o.has_tcpclean
      AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.node = o.node AND n.state = 'silent'))`

// recordSilentSQL records "unknown" for every client with an open channel
// on one of the nodes that just turned silent ($1–$3) whose open channels
// are now all on silent nodes; a client on several of them once.
const recordSilentSQL = `
INSERT INTO node_presence_changes (client_id, node, epoch, silent_since, state)
SELECT client_id, node, epoch, silent_since, 'unknown' FROM (
    SELECT DISTINCT ON (c.client_id) c.client_id, s.node, s.epoch, s.silent_since
    FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS s(node, epoch, silent_since)
    JOIN channels c ON c.node = s.node AND c.has_connect AND NOT c.has_tcpclean
    WHERE ` + clientsAllOnSilentNodesSQL + `
    ORDER BY c.client_id, s.node) AS t
ORDER BY client_id
ON CONFLICT DO NOTHING`

// recordBackSQL records "online" for every client with an open channel on
// the node ($1) whose open channels are all on silent nodes, this one
// still among them: the clients the node's report turns online again.
const recordBackSQL = `
INSERT INTO node_presence_changes (client_id, node, epoch, silent_since, state)
SELECT DISTINCT c.client_id, $1, $2, $3::timestamptz, 'online'
FROM channels c
WHERE c.node = $1 AND c.has_connect AND NOT c.has_tcpclean AND ` + clientsAllOnSilentNodesSQL + `
ORDER BY 1
ON CONFLICT DO NOTHING`

// pruneNodePresenceSQL deletes the rows every hook has passed: those at or
// below the oldest cursor of the hooks some process delivered in the last
// week (SaveWebhookCursor renews updated_at even while a receiver fails;
// a hook no process has run for a week holds nothing). With no such hook
// every row goes: a hook configured later starts at the head of the feed.
// So the tables hold what the slowest hook has yet to deliver, as the
// channel feed does; they are pruned at each new silence.
const (
	pruneNodePresenceSQL = `
DELETE FROM node_presence_changes WHERE seq <= (
    SELECT coalesce(min(cursor_seq), (SELECT max(seq) FROM node_presence_changes))
    FROM webhook_cursors WHERE updated_at > now() - interval '7 days')`
	pruneSilentSpellsSQL = `
DELETE FROM node_silent_spells WHERE end_seq <= (
    SELECT coalesce(min(cursor_seq), (SELECT max(end_seq) FROM node_silent_spells))
    FROM webhook_cursors WHERE updated_at > now() - interval '7 days')`
)

// endSpellsSQL ends the silent spell of the nodes $1, whichever epoch.
const endSpellsSQL = `UPDATE node_silent_spells SET end_seq = nextval('events_seq_seq') WHERE node = ANY($1) AND end_seq IS NULL`

// nodeEpoch is a node at one of its epochs.
type nodeEpoch struct{ Node, Epoch string }

// recordLeaseChanges records what ExpireNodes decided in tx: the spells
// of the nodes that turned silent and the "unknown" changes of their
// clients, and the end of the spells of the nodes declared lost (their
// open channels now count as on a live node, as in the API, until their
// node_lost closes land). It prunes what no hook needs any more. Call it
// after every update of nodes in tx: it waits for the apply lock, and no
// transaction holding that lock waits for a nodes row.
func recordLeaseChanges(ctx context.Context, tx pgx.Tx, silent []nodeSpell, lost []nodeEpoch) error {
	if len(silent) == 0 && len(lost) == 0 {
		return nil
	}
	nodes, epochs, since := make([]string, len(silent)), make([]string, len(silent)), make([]time.Time, len(silent))
	for i, s := range silent {
		nodes[i], epochs[i], since[i] = s.Node, s.Epoch, s.SilentSince
	}
	lostNodes := make([]string, len(lost))
	for i, n := range lost {
		lostNodes[i] = n.Node
	}
	var b pgx.Batch
	b.Queue(pruneNodePresenceSQL)
	b.Queue(pruneSilentSpellsSQL)
	b.Queue(applyExclusiveLockSQL, applyLockKey)
	b.Queue(`INSERT INTO node_silent_spells (node, epoch, silent_since)
		SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[]) ORDER BY 1 ON CONFLICT DO NOTHING`, nodes, epochs, since)
	b.Queue(recordSilentSQL, nodes, epochs, since)
	b.Queue(endSpellsSQL, lostNodes)
	return tx.SendBatch(ctx, &b).Close()
}

// recordNodeReport records what a report of node at epoch changes when
// the node is silent: its spell ends, and, when the report is of the
// silent epoch itself, the clients it turns online again get "online"
// (a newer epoch fences the old one's channels instead). Call it with the
// node's row locked, before the report updates it.
func recordNodeReport(ctx context.Context, tx pgx.Tx, node, epoch string) error {
	var (
		silentEpoch string
		since       time.Time
	)
	err := tx.QueryRow(ctx, `SELECT epoch, silent_since FROM nodes WHERE node = $1 AND state = 'silent' AND silent_since IS NOT NULL`,
		node).Scan(&silentEpoch, &since)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // the usual heartbeat of an alive node
	}
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, applyExclusiveLockSQL, applyLockKey); err != nil {
		return err
	}
	if epoch == silentEpoch {
		if _, err := tx.Exec(ctx, recordBackSQL, node, epoch, since); err != nil {
			return err
		}
	}
	_, err = tx.Exec(ctx, endSpellsSQL, []string{node})
	return err
}
