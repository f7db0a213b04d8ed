package pgstore

import (
	"context"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/presenced/presenced/presence"
)

// refusedPerClient bounds the refused connects kept per client id: the
// newest ones.
const refusedPerClient = 100

// recordRefusedSQL stores a batch of refused connects and trims the
// clients of the batch to their newest refusedPerClient (the trim sees the
// rows before the batch: a client may briefly hold a few more).
var recordRefusedSQL = `
WITH added AS (
    INSERT INTO refused_connects (client_id, time, return_code, reason, client_ip, username, node)
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::integer[], $4::text[], $5::text[], $6::text[], $7::text[])
    RETURNING client_id
)
DELETE FROM refused_connects r
WHERE r.client_id IN (SELECT client_id FROM added)
  AND r.id < (SELECT x.id FROM refused_connects x WHERE x.client_id = r.client_id
              ORDER BY x.id DESC OFFSET ` + strconv.Itoa(refusedPerClient-1) + ` LIMIT 1)`

// RecordRefused stores refused connects (see presence.RefusedConnect),
// keeping about the newest refusedPerClient of each client id.
func (s *Store) RecordRefused(ctx context.Context, refused []presence.RefusedConnect) error {
	if len(refused) == 0 {
		return nil
	}
	n := len(refused)
	ids, times, codes := make([]string, n), make([]int64, n), make([]int32, n)
	reasons, ips, users, nodes := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, r := range refused {
		ids[i], times[i], codes[i] = r.ClientID, r.Time, int32(r.ReturnCode)
		reasons[i], ips[i], users[i], nodes[i] = r.Reason, r.ClientIP, r.Username, r.Node
	}
	_, err := s.pool.Exec(ctx, recordRefusedSQL, ids, times, codes, reasons, ips, users, nodes)
	return storeErr("record refused connects", err)
}

// RefusedConnects returns a client's refused connects, newest first;
// limit is clamped to DefaultLimit/MaxLimit.
func (s *Store) RefusedConnects(ctx context.Context, clientID string, limit int) ([]presence.RefusedConnect, error) {
	rows, _ := s.pool.Query(ctx, `SELECT client_id, time, return_code, reason, client_ip, username, node, recorded_at
		FROM refused_connects WHERE client_id = $1 ORDER BY id DESC LIMIT $2`, clientID, clampLimit(limit))
	out := []presence.RefusedConnect{}
	var r presence.RefusedConnect
	_, err := pgx.ForEachRow(rows, []any{&r.ClientID, &r.Time, &r.ReturnCode, &r.Reason, &r.ClientIP, &r.Username, &r.Node, &r.RecordedAt}, func() error {
		out = append(out, r)
		return nil
	})
	return out, storeErr("read refused connects", err)
}

// PruneRefused deletes refused connects recorded before before, and
// returns how many.
func (s *Store) PruneRefused(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, "DELETE FROM refused_connects WHERE recorded_at < $1", before)
	return tag.RowsAffected(), storeErr("prune refused connects", err)
}
