package pgstore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/presenced/presenced/presence"
)

// ExpireNodes applies the lease rules on the store's clock: an alive node
// whose last report is older than its lease turns silent (its clients are
// answered "unknown", and those changes are recorded for webhooks:
// recordLeaseChanges); a node silent for longer than grace is lost, and its
// open channels are closed with tcpclean reason node_lost. It returns the
// synthesized events that were newly stored. Concurrent callers are safe:
// the updates are conditional and the closes idempotent. skipNode (if not
// empty) is left alone: the caller hosts that node and knows it is alive.
func (s *Store) ExpireNodes(ctx context.Context, grace time.Duration, skipNode string) ([]presence.StoredEvent, error) {
	var toClose []presence.Event
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		toClose = toClose[:0]
		rows, err := tx.Query(ctx, `
			UPDATE nodes SET state = 'silent', silent_since = last_seen + lease_ms * interval '1 millisecond'
			WHERE state = 'alive' AND last_seen + lease_ms * interval '1 millisecond' < now() AND node <> $1
			RETURNING node, epoch, silent_since`, skipNode)
		if err != nil {
			return err
		}
		// The row update is conditional, so of several monitors only one
		// turns a node silent and records its clients' "unknown".
		silent, err := pgx.CollectRows(rows, pgx.RowToStructByPos[nodeSpell])
		if err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `
			UPDATE nodes SET state = 'lost'
			WHERE state = 'silent' AND silent_since + $1 * interval '1 millisecond' < now() AND node <> $2
			RETURNING node, epoch`, grace.Milliseconds(), skipNode)
		if err != nil {
			return err
		}
		lost, err := pgx.CollectRows(rows, pgx.RowToStructByPos[nodeEpoch])
		if err != nil {
			return err
		}
		now := time.Now().UnixMilli()
		for _, n := range lost {
			open, err := openChannelsOf(ctx, tx, `node = $1 AND epoch = $2`, n.Node, n.Epoch)
			if err != nil {
				return err
			}
			toClose = append(toClose, closeEvents(open, presence.ReasonNodeLost, now)...)
		}
		return recordLeaseChanges(ctx, tx, silent, lost)
	})
	if err != nil {
		return nil, storeErr("expire node leases", err)
	}
	if len(toClose) == 0 {
		return nil, nil
	}
	result, err := s.apply(ctx, toClose, sourceStore)
	return result.Applied, err
}

// Nodes lists every broker node with its current epoch, state and open
// channels.
func (s *Store) Nodes(ctx context.Context) ([]presence.Node, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT n.node, n.epoch, n.generation, n.state, n.started_at, n.last_seen, n.lease_ms, n.silent_since,
		       (SELECT count(*) FROM channels c WHERE c.node = n.node AND c.epoch = n.epoch AND c.has_connect AND NOT c.has_tcpclean)
		FROM nodes n ORDER BY n.node`)
	if err != nil {
		return nil, storeErr("list nodes", err)
	}
	nodes, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (presence.Node, error) {
		var n presence.Node
		var gen int64
		var state string
		err := row.Scan(&n.Node, &n.Epoch, &gen, &state, &n.StartedAt, &n.LastHeartbeat, &n.LeaseMillis, &n.SilentSince, &n.OpenChannels)
		n.Generation, n.State = uint64(gen), presence.NodeState(state)
		return n, err
	})
	if err != nil {
		return nil, storeErr("list nodes", err)
	}
	return nodes, nil
}
