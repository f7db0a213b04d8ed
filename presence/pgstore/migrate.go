package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/presenced/presenced/migrations"
	"github.com/presenced/presenced/presence"
)

// migrateLockKey is the pg_advisory_lock key that serializes migrations of
// one database among every presenced process starting at the same time.
const migrateLockKey int64 = 0x70726573_6d696772 // "presmigr"

// Migrate applies the embedded migrations this database lacks, in order,
// each in its own transaction, recorded in schema_migrations. It is
// idempotent and safe to run from several processes at once. It refuses a
// database whose schema is newer than this binary. It then makes the event
// history's day partitions of the coming days (EnsurePartitions).
func (s *Store) Migrate(ctx context.Context) error { return Migrate(ctx, s.pool) }

// Migrate applies the embedded migrations to the database of pool (see
// Store.Migrate).
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	all, err := migrations.All()
	if err != nil {
		return presence.Errorf(presence.EINTERNAL, "migrate: %v", err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return storeErr("migrate: connect", err)
	}
	// The advisory lock belongs to the session: release it on this
	// connection, or close the connection so the lock cannot outlive us.
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLockKey); err != nil {
		conn.Release()
		return storeErr("migrate: take migration lock", err)
	}
	defer func() {
		if _, err := conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", migrateLockKey); err != nil {
			_ = conn.Conn().Close(context.Background())
		}
		conn.Release()
	}()

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer     PRIMARY KEY,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return storeErr("migrate: create schema_migrations", err)
	}
	applied := map[int]string{}
	rows, _ := conn.Query(ctx, "SELECT version, name FROM schema_migrations")
	var version int
	var name string
	if _, err := pgx.ForEachRow(rows, []any{&version, &name}, func() error {
		applied[version] = name
		return nil
	}); err != nil {
		return storeErr("migrate: read schema_migrations", err)
	}
	latest := all[len(all)-1].Version
	for v := range applied {
		if v > latest {
			return fmt.Errorf("migrate: %w", schemaMismatch(maxKey(applied), latest))
		}
	}
	for _, m := range all {
		if name, ok := applied[m.Version]; ok {
			if name != m.Name {
				return presence.Errorf(presence.EINTERNAL,
					"migrate: database has migration %04d_%s where this presenced has %04d_%s", m.Version, name, m.Version, m.Name)
			}
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil { // no arguments: simple protocol, several statements allowed
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name)
			return err
		})
		if err != nil {
			return storeErr(fmt.Sprintf("migrate: apply %04d_%s", m.Version, m.Name), err)
		}
	}
	return ensurePartitions(ctx, conn)
}

// SchemaVersion returns the highest migration applied to the database, 0
// for an empty one.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var exists bool
	if err := s.pool.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return 0, storeErr("read schema version", err)
	}
	if !exists {
		return 0, nil
	}
	var version int
	err := s.pool.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&version)
	return version, storeErr("read schema version", err)
}

func maxKey(m map[int]string) int {
	highest := 0
	for k := range m {
		highest = max(highest, k)
	}
	return highest
}
