package pgstore

import (
	"context"
	"strings"
)

// CountEvents counts the stored events of the clients whose id starts with
// prefix ("" counts all). The count is exact and costs a scan: all events
// for "", an index range of events_client_seq for a prefix (on a database
// with the C collation, as presenced's own cluster has; others scan). The
// API caches it briefly.
func (s *Store) CountEvents(ctx context.Context, prefix string) (int64, error) {
	var n int64
	var err error
	if prefix == "" {
		err = s.pool.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&n)
	} else {
		err = s.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE client_id LIKE $1 ESCAPE '\'`, likePrefix(prefix)).Scan(&n)
	}
	return n, storeErr("count events", err)
}

// likePrefix turns prefix into a LIKE pattern that matches exactly the
// strings starting with it.
func likePrefix(prefix string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(prefix) + "%"
}
