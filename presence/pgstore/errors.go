package pgstore

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/presenced/presenced/presence"
)

// classify maps a database error to a presence error code and a message
// that reveals no internals:
//
//   - EUNAVAILABLE: the database cannot be reached or asks to retry
//     (connection failures, timeouts, shutdown, too many connections,
//     serialization failures and deadlocks, a schema not yet migrated). The
//     caller may retry the same call.
//   - EINVALID: the database refused the data (classes 22 data exception and
//     23 integrity constraint violation). Retrying the same input fails again.
//   - EINTERNAL: anything else (a bug).
func classify(err error) (code, message string) {
	if errors.Is(err, context.Canceled) {
		return presence.EUNAVAILABLE, "the request was canceled"
	}
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		switch class := pgErr.Code[:2]; {
		case class == "08", class == "53", class == "58", class == "57" && pgErr.Code != "57014":
			return presence.EUNAVAILABLE, "database unavailable"
		case pgErr.Code == "57014": // query_canceled (statement_timeout)
			return presence.EUNAVAILABLE, "database did not answer in time"
		case pgErr.Code == "40001", pgErr.Code == "40P01", pgErr.Code == "55P03":
			return presence.EUNAVAILABLE, "database conflict; try again"
		case pgErr.Code == "42P01": // undefined_table
			return presence.EUNAVAILABLE, "database schema is not migrated: run presenced migrate"
		case class == "22", class == "23":
			return presence.EINVALID, "the database refused the data: " + pgErr.Message
		}
		return presence.EINTERNAL, "database error"
	}
	if errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) {
		return presence.EUNAVAILABLE, "database did not answer in time"
	}
	if connErr, ok := errors.AsType[*pgconn.ConnectError](err); ok && connErr != nil {
		return presence.EUNAVAILABLE, "database unavailable"
	}
	var netErr net.Error
	if pgconn.SafeToRetry(err) || errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, puddle.ErrClosedPool) { // a closed connection is SafeToRetry (pgconn's connLockError)
		return presence.EUNAVAILABLE, "database unavailable"
	}
	return presence.EINTERNAL, "database error"
}
