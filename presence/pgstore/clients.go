package pgstore

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/presenced/presenced/presence"
)

// The view holds every online client but only some offline ones (see
// presence.View); these queries answer for the rest from the store.

// lastEventTimesSQL finds each client's newest event time on its most
// recently changed channel, at the end of channels_client_last_seq: one
// index probe per id, where the events' own index would cost one per day
// partition. A channel's newest event is the greatest of its per-type
// times; the newest channel by store order holds the newest event but
// for clocks that disagree by more than the time between two of the
// client's connections.
const lastEventTimesSQL = `
SELECT coalesce((SELECT greatest(connect_at, disconnect_at, tcpclean_at) FROM channels c
                 WHERE c.client_id = q.client_id ORDER BY c.last_seq DESC LIMIT 1), 0)
FROM unnest($1::text[]) WITH ORDINALITY AS q(client_id, ord)
ORDER BY q.ord`

// LastEventTimes returns the newest event time (ms) of each client, in
// the order of clientIDs; 0 for a client the store has no event of.
func (s *Store) LastEventTimes(ctx context.Context, clientIDs []string) ([]int64, error) {
	times := make([]int64, 0, len(clientIDs))
	rows, _ := s.pool.Query(ctx, lastEventTimesSQL, clientIDs)
	var t int64
	_, err := pgx.ForEachRow(rows, []any{&t}, func() error {
		times = append(times, t)
		return nil
	})
	return times, storeErr("look up last event times", err)
}

// clientPageSQL lists distinct client ids after a cursor with their newest
// event time, in id order, walking channels_client_last_seq: the LIMIT
// stops the scan once the page is full. With the C collation (presenced's
// own cluster) the LIKE prefix becomes an index range.
const clientPageSQL = `
SELECT client_id, coalesce(max(greatest(connect_at, disconnect_at, tcpclean_at)), 0)
FROM channels
WHERE client_id > $1 AND client_id LIKE $2 ESCAPE '\'
GROUP BY client_id
ORDER BY client_id
LIMIT $3`

// ClientPage returns up to limit clients with an id after after and
// starting with prefix, in id order, with their newest event time.
func (s *Store) ClientPage(ctx context.Context, prefix, after string, limit int) ([]presence.ClientActivity, error) {
	page := make([]presence.ClientActivity, 0, max(limit, 1))
	rows, _ := s.pool.Query(ctx, clientPageSQL, after, likePrefix(prefix), max(limit, 1))
	var a presence.ClientActivity
	_, err := pgx.ForEachRow(rows, []any{&a.ClientID, &a.LastEventAt}, func() error {
		page = append(page, a)
		return nil
	})
	return page, storeErr("list clients", err)
}

// CountClients counts the distinct clients the store holds channels of
// whose id starts with prefix ("" counts all). Exact, at the cost of a
// scan of channels_client_last_seq (or its prefix range); the API caches
// it briefly.
func (s *Store) CountClients(ctx context.Context, prefix string) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(DISTINCT client_id) FROM channels WHERE client_id LIKE $1 ESCAPE '\'`,
		likePrefix(prefix)).Scan(&n)
	return n, storeErr("count clients", err)
}
