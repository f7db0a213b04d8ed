package api

import (
	"encoding/base64"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/presenced/presenced/presence"
)

// queryLimit reads ?limit=: DefaultPageLimit when absent, 1..MaxPageLimit.
func queryLimit(q url.Values) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return DefaultPageLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxPageLimit {
		return 0, presence.FieldErrorf("limit", "must be an integer from 1 to %d", MaxPageLimit)
	}
	return n, nil
}

// queryTime reads a time parameter: RFC 3339, or milliseconds since the
// Unix epoch (the unit of the event contract). Absent is the zero time.
func queryTime(q url.Values, name string) (time.Time, error) {
	v := q.Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms > 0 {
		return presence.FromMillis(ms), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, presence.FieldErrorf(name, "must be an RFC 3339 time or milliseconds since the Unix epoch")
	}
	return t.UTC(), nil
}

// Cursors are opaque to clients: the last client id of a page (base64url,
// since ids may hold any character) or the seq of the last event.

func encodeIDCursor(id string) string { return base64.RawURLEncoding.EncodeToString([]byte(id)) }

func decodeIDCursor(v string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(b) == 0 || len(b) > presence.MaxClientIDBytes {
		return "", presence.FieldErrorf("cursor", "is not a cursor of this list; pass the nextCursor of the previous page")
	}
	return string(b), nil
}

func encodeSeqCursor(seq int64) string { return strconv.FormatInt(seq, 10) }

func decodeSeqCursor(v string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n <= 0 {
		return 0, presence.FieldErrorf("cursor", "is not a cursor of this list; pass the nextCursor of the previous page")
	}
	return n, nil
}

// page is the envelope of every keyset-paginated list.
type page[T any] struct {
	Items []T `json:"items"`
	// NextCursor fetches the next page; absent on the last page.
	NextCursor string `json:"nextCursor,omitempty"`
}
