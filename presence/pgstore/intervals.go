package pgstore

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/presenced/presenced/presence"
)

// MaxSpans bounds the channels one interval query reads: a window holding
// more connections of one client is refused, to be narrowed.
const MaxSpans = 10_000

// channelSpansSQL reads the channels of a client connected at some time
// in [$2, $3) (broker ms): connected before the window's end, and not
// closed before its start. It walks channels_client_last_seq for the
// client's channels; a channel whose connect the store has not seen has no
// start and is left out.
const channelSpansSQL = `
SELECT connect_at, coalesce(tcpclean_at, 0) FROM channels
WHERE client_id = $1 AND has_connect AND connect_at < $3
  AND (NOT has_tcpclean OR tcpclean_at > $2)
LIMIT $4`

// ChannelSpans returns the connected periods of clientID's channels that
// overlap [from, to) (ms, broker clock), within retention. It fails with
// presence.EINVALID when there are more than MaxSpans.
func (s *Store) ChannelSpans(ctx context.Context, clientID string, from, to int64) ([]presence.ChannelSpan, error) {
	rows, _ := s.pool.Query(ctx, channelSpansSQL, clientID, from, to, MaxSpans+1)
	var (
		span  presence.ChannelSpan
		spans []presence.ChannelSpan
	)
	_, err := pgx.ForEachRow(rows, []any{&span.ConnectAt, &span.TCPCleanAt}, func() error {
		spans = append(spans, span)
		return nil
	})
	if err != nil {
		return nil, storeErr("read channel spans", err)
	}
	if len(spans) > MaxSpans {
		return nil, presence.FieldErrorf("from", "the range holds more than %d connections of this client; narrow it", MaxSpans)
	}
	return spans, nil
}
