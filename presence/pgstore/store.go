// Package pgstore is the PostgreSQL store of presenced (pgx/v5): idempotent
// batched apply of lifecycle events, online lookups on open channels,
// keyset-paginated history, and retention. The schema is in migrations/.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/presenced/presenced/migrations"
	"github.com/presenced/presenced/presence"
)

// Store is the PostgreSQL store. It is safe for concurrent use.
type Store struct {
	pool      *pgxpool.Pool
	takeovers takeoverCounters
	writes    writeCounters
	// watermark is shared by every feed reader of this Store (followers,
	// changesSince): what one learns is final for all.
	watermark feedWatermark
}

// defaultMaxConns serves the API and the consumer of one process; the
// embedded cluster allows 200 connections.
const defaultMaxConns = 20

// Open connects to the database at url (a postgres:// URL or a libpq
// keyword/value string) and checks that it answers. It does not migrate.
func Open(ctx context.Context, url string) (*Store, error) {
	config, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, presence.Errorf(presence.EINVALID, "open store: invalid database URL (not shown: it may hold a password): %s", parseProblem(err))
	}
	if !strings.Contains(url, "pool_max_conns") {
		config.MaxConns = defaultMaxConns
	}
	if _, ok := config.ConnConfig.RuntimeParams["application_name"]; !ok {
		config.ConnConfig.RuntimeParams["application_name"] = "presenced"
	}
	pool, err := pgxpool.NewWithConfig(ctx, config)
	if err != nil {
		return nil, storeErr("open store", err)
	}
	s := &Store{pool: pool}
	if err := s.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close closes every connection; it waits for queries in progress.
func (s *Store) Close() { s.pool.Close() }

// Pool exposes the connection pool, for tests and tools.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return storeErr("ping database", s.pool.Ping(ctx))
}

// Ready checks that the database answers and its schema is at the version
// this binary was built for (for readiness probes).
func (s *Store) Ready(ctx context.Context) error {
	version, err := s.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if latest := migrations.Latest(); version != latest {
		return schemaMismatch(version, latest)
	}
	return nil
}

func schemaMismatch(version, latest int) error {
	if version > latest {
		return presence.Errorf(presence.EUNAVAILABLE,
			"database schema is at version %d, newer than this presenced (version %d): upgrade presenced", version, latest)
	}
	return presence.Errorf(presence.EUNAVAILABLE,
		"database schema is at version %d, this presenced needs version %d: run presenced migrate", version, latest)
}

// storeError presents a database failure as a domain error (code and a
// message safe for clients) while keeping the cause for logs:
// presence.ErrorCode and ErrorMessage see the *presence.Error, err.Error()
// and errors.Is see the cause.
type storeError struct {
	op     string
	domain *presence.Error
	cause  error
}

func (e *storeError) Error() string   { return e.op + ": " + e.cause.Error() }
func (e *storeError) Unwrap() []error { return []error{e.domain, e.cause} }

// storeErr classifies err (see code) and wraps it with op ("verb noun").
// It returns nil for nil.
func storeErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if se, ok := errors.AsType[*storeError](err); ok {
		return &storeError{op: op + ": " + se.op, domain: se.domain, cause: se.cause}
	}
	if _, ok := errors.AsType[*presence.Error](err); ok {
		return fmt.Errorf("%s: %w", op, err)
	}
	code, message := classify(err)
	return &storeError{op: op, domain: presence.Errorf(code, "%s", message), cause: err}
}

// parseProblem says why a database URL could not be parsed without
// quoting it: pgconn's message quotes the string with the password
// redacted, but its redaction misses ?password= in a URL and
// "password = x" in a keyword/value string.
func parseProblem(err error) string {
	pe, ok := errors.AsType[*pgconn.ParseConfigError](err)
	if !ok {
		return "it could not be parsed"
	}
	unquoted := *pe
	unquoted.ConnString = ""
	return strings.TrimPrefix(unquoted.Error(), "cannot parse ``: ")
}
