package pgstore

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/presenced/presenced/presence"
)

// ApplyNodeEvent records a broker node's report and closes, through the
// same idempotent Apply as client events, every channel the report proves
// closed:
//
//   - fencing: open channels of the node from any epoch other than its
//     current one (reason node_lost) — a restarted broker's old clients;
//   - node_stop: the node's remaining open channels (reason server_shutdown);
//   - node_channels: open channels of the node and epoch that the broker no
//     longer holds and whose connect it numbered before the report (reason
//     reconciled) — a tcpclean lost anywhere; a channel whose takeover
//     tcpclean is held (see applySQL) is not lost, and is left to it.
//
// It returns the synthesized events that were newly stored. Reports of an
// epoch that was superseded change nothing but fence that epoch again.
func (s *Store) ApplyNodeEvent(ctx context.Context, n presence.NodeEvent) ([]presence.StoredEvent, error) {
	if err := n.Validate(); err != nil {
		return nil, err
	}
	var toClose []presence.Event
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		toClose = toClose[:0]
		current, err := recordNodeEvent(ctx, tx, n)
		if err != nil {
			return err
		}
		now := time.Now().UnixMilli()
		// Fence every other epoch of the node.
		fenced, err := openChannelsOf(ctx, tx, `node = $1 AND epoch IS DISTINCT FROM $2`, n.Node, current)
		if err != nil {
			return err
		}
		toClose = append(toClose, closeEvents(fenced, presence.ReasonNodeLost, now)...)
		if n.Epoch != current {
			return nil
		}
		switch n.Type {
		case presence.NodeStop:
			stopped, err := openChannelsOf(ctx, tx, `node = $1 AND epoch = $2`, n.Node, n.Epoch)
			if err != nil {
				return err
			}
			toClose = append(toClose, closeEvents(stopped, presence.ReasonServerShutdown, now)...)
		case presence.NodeChannels:
			gone, err := openChannelsOf(ctx, tx,
				`node = $1 AND epoch = $2 AND coalesce(connect_node_seq, 0) < $4
				 AND channel_id NOT IN (SELECT unnest($3::text[]))
				 AND channel_id NOT IN (SELECT channel_id FROM takeovers_pending)`,
				n.Node, n.Epoch, n.Channels, int64(n.Seq))
			if err != nil {
				return err
			}
			toClose = append(toClose, closeEvents(gone, presence.ReasonReconciled, now)...)
		}
		return nil
	})
	if err != nil {
		return nil, storeErr("apply node event", err)
	}
	if len(toClose) == 0 {
		return nil, nil
	}
	result, err := s.apply(ctx, toClose, sourceStore)
	return result.Applied, err
}

// recordNodeEvent updates the nodes row for n under a row lock and returns
// the node's current epoch afterwards.
func recordNodeEvent(ctx context.Context, tx pgx.Tx, n presence.NodeEvent) (string, error) {
	if _, err := tx.Exec(ctx, `INSERT INTO node_epochs (node, epoch, generation) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		n.Node, n.Epoch, int64(n.Generation)); err != nil {
		return "", err
	}
	state := presence.NodeAlive
	if n.Type == presence.NodeStop {
		state = presence.NodeStopped
	}
	var current string
	var fenced bool
	err := tx.QueryRow(ctx, `
		SELECT n.epoch, e.fenced_at IS NOT NULL
		FROM nodes n JOIN node_epochs e ON e.node = n.node AND e.epoch = $2
		WHERE n.node = $1 FOR UPDATE OF n`, n.Node, n.Epoch).Scan(&current, &fenced)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		_, err = tx.Exec(ctx, `
			INSERT INTO nodes (node, epoch, generation, state, lease_ms, last_seq)
			VALUES ($1, $2, $3, $4, $5, $6)`,
			n.Node, n.Epoch, int64(n.Generation), state, n.LeaseMillis, int64(n.Seq))
		return n.Epoch, err
	case err != nil:
		return "", err
	case fenced:
		return current, nil
	case current == n.Epoch:
		// The same process reporting again: alive (again), unless it stopped.
		// A stopped node stays stopped until a new epoch starts. A node
		// declared lost that reports again is alive: the channels closed
		// meanwhile stay closed (their clients count as online again only
		// once they reconnect), its new channels count as usual. A silent
		// node's clients are online again: recorded for webhooks.
		if err := recordNodeReport(ctx, tx, n.Node, n.Epoch); err != nil {
			return "", err
		}
		_, err = tx.Exec(ctx, `
			UPDATE nodes SET last_seen = now(), lease_ms = $3, silent_since = NULL,
			       state = CASE WHEN state = 'stopped' OR $4 = 'stopped' THEN 'stopped' ELSE $4 END,
			       last_seq = greatest(last_seq, $5)
			WHERE node = $1 AND epoch = $2`,
			n.Node, n.Epoch, n.LeaseMillis, state, int64(n.Seq))
		return current, err
	}
	newer, err := isNewerEpoch(ctx, tx, n, current)
	if err != nil {
		return "", err
	}
	if !newer {
		// A late report of an older epoch: fence it, keep the current one.
		_, err = tx.Exec(ctx, `UPDATE node_epochs SET fenced_at = now() WHERE node = $1 AND epoch = $2 AND fenced_at IS NULL`, n.Node, n.Epoch)
		return current, err
	}
	if err := recordNodeReport(ctx, tx, n.Node, n.Epoch); err != nil { // a silent node's spell ends
		return "", err
	}
	if _, err := tx.Exec(ctx, `
		UPDATE nodes SET epoch = $2, generation = $3, state = $4, started_at = now(), last_seen = now(),
		       lease_ms = $5, silent_since = NULL, last_seq = $6
		WHERE node = $1`,
		n.Node, n.Epoch, int64(n.Generation), state, n.LeaseMillis, int64(n.Seq)); err != nil {
		return "", err
	}
	_, err = tx.Exec(ctx, `UPDATE node_epochs SET fenced_at = now() WHERE node = $1 AND epoch <> $2 AND fenced_at IS NULL`, n.Node, n.Epoch)
	return n.Epoch, err
}

// isNewerEpoch decides whether n's epoch supersedes the current one: by the
// brokers' start generation when both carry one, else by which epoch the
// store saw first — never by broker clocks.
func isNewerEpoch(ctx context.Context, tx pgx.Tx, n presence.NodeEvent, current string) (bool, error) {
	var currentGen int64
	var currentSeen, seen time.Time
	err := tx.QueryRow(ctx, `
		SELECT c.generation, c.first_seen, e.first_seen
		FROM node_epochs c, node_epochs e
		WHERE c.node = $1 AND c.epoch = $2 AND e.node = $1 AND e.epoch = $3`,
		n.Node, current, n.Epoch).Scan(&currentGen, &currentSeen, &seen)
	if err != nil {
		return false, err
	}
	if n.Generation > 0 && currentGen > 0 && int64(n.Generation) != currentGen {
		return int64(n.Generation) > currentGen, nil
	}
	return seen.After(currentSeen), nil
}

// openChannel is an open channel about to be closed by the store.
type openChannel struct {
	channelID, clientID, node, epoch string
}

// openChannelsOf returns the open channels matching where (over the
// channels table, using the channels_open_node index).
func openChannelsOf(ctx context.Context, tx pgx.Tx, where string, args ...any) ([]openChannel, error) {
	rows, err := tx.Query(ctx, `
		SELECT channel_id, client_id, coalesce(node, ''), coalesce(epoch, '')
		FROM channels WHERE has_connect AND NOT has_tcpclean AND `+where+`
		ORDER BY channel_id`, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (openChannel, error) {
		var c openChannel
		err := row.Scan(&c.channelID, &c.clientID, &c.node, &c.epoch)
		return c, err
	})
}

// closeEvents synthesizes the tcpclean events that close channels.
func closeEvents(channels []openChannel, reason presence.Reason, nowMillis int64) []presence.Event {
	events := make([]presence.Event, len(channels))
	for i, c := range channels {
		events[i] = presence.Event{
			ClientID: c.clientID, ChannelID: c.channelID, Type: presence.EventTCPClean,
			Time: nowMillis, Node: c.node, Epoch: c.epoch, Reason: reason,
		}
	}
	return events
}
