package pgstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/presenced/presenced/presence"
)

// Limits of list queries: a limit ≤ 0 means the default, a larger one is
// capped.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

func clampLimit(limit int) int {
	switch {
	case limit <= 0:
		return DefaultLimit
	case limit > MaxLimit:
		return MaxLimit
	}
	return limit
}

// channelColumns are the columns scanChannel reads.
const channelColumns = `channel_id, client_id, client_ip, node, epoch, connect_at, disconnect_at, tcpclean_at,
    has_connect, has_tcpclean, reason, last_seq, username, keepalive, clean_session, tls_version, tls_client_subject,
    protocol_level, reason_code`

// channelsSQL lists open channels first (from the partial index), then the
// newest closed ones by last_seq (from channels_client_last_seq); neither
// part reads more than limit rows.
const channelsSQL = `
SELECT ` + channelColumns + ` FROM (
    (SELECT ` + channelColumns + `, true AS open FROM channels
     WHERE client_id = $1 AND has_connect AND NOT has_tcpclean
     ORDER BY last_seq DESC LIMIT $2)
    UNION ALL
    (SELECT ` + channelColumns + `, false AS open FROM channels
     WHERE client_id = $1 AND NOT (has_connect AND NOT has_tcpclean)
     ORDER BY last_seq DESC LIMIT $2)
) c
ORDER BY open DESC, last_seq DESC
LIMIT $2`

// Channels lists a client's channels: open ones first, then the most
// recently active (by store arrival order). limit is clamped to
// DefaultLimit/MaxLimit.
func (s *Store) Channels(ctx context.Context, clientID string, limit int) ([]presence.Channel, error) {
	rows, _ := s.pool.Query(ctx, channelsSQL, clientID, clampLimit(limit))
	channels, err := collectChannels(rows)
	return channels, storeErr("list channels", err)
}

func collectChannels(rows pgx.Rows) ([]presence.Channel, error) {
	channels := []presence.Channel{}
	var (
		c                            presence.Channel
		clientIP, node, epoch        *string
		reason                       *string
		connectAt, disconnectAt, tcp *int64
		hasConnect, hasTCPClean      bool
		lastSeq                      int64
		username, tlsVersion, tlsSub *string
		keepalive                    *int32
		cleanSession                 *bool
		protocolLevel, reasonCode    *int16
	)
	_, err := pgx.ForEachRow(rows, []any{&c.ChannelID, &c.ClientID, &clientIP, &node, &epoch,
		&connectAt, &disconnectAt, &tcp, &hasConnect, &hasTCPClean, &reason, &lastSeq,
		&username, &keepalive, &cleanSession, &tlsVersion, &tlsSub, &protocolLevel, &reasonCode}, func() error {
		ch := presence.Channel{
			ChannelID:    c.ChannelID,
			ClientID:     c.ClientID,
			ClientIP:     deref(clientIP),
			Node:         deref(node),
			Epoch:        deref(epoch),
			Open:         presence.ChannelEvents{Connect: hasConnect, TCPClean: hasTCPClean}.Open(),
			ConnectAt:    timePtr(connectAt),
			DisconnectAt: timePtr(disconnectAt),
			TCPCleanAt:   timePtr(tcp),
			Username:     deref(username),
			TLSVersion:   deref(tlsVersion),
			TLSSubject:   deref(tlsSub),
		}
		if keepalive != nil {
			k := int(*keepalive)
			ch.Keepalive = &k
		}
		if cleanSession != nil {
			v := *cleanSession
			ch.CleanSession = &v
		}
		if protocolLevel != nil {
			ch.ProtocolLevel = int(*protocolLevel)
		}
		ch.ReasonCode = intPtr(reasonCode)
		if hasTCPClean {
			ch.Reason = presence.Reason(deref(reason))
			ch.ClosedBy = presence.ClosedBy(ch.Reason)
		}
		if connectAt != nil && tcp != nil {
			d := *tcp - *connectAt
			ch.DurationMillis = &d
		}
		channels = append(channels, ch)
		return nil
	})
	return channels, err
}

// History returns a page of a client's events, keyset-paginated on seq:
// ascending pages continue after q.AfterSeq, descending ones before it
// (0 starts at either end). From (inclusive) and To (exclusive) bound the
// event time when set. Limit is clamped to DefaultLimit/MaxLimit.
func (s *Store) History(ctx context.Context, q presence.HistoryQuery) ([]presence.StoredEvent, error) {
	var where []string
	args := []any{q.ClientID}
	where = append(where, "client_id = $1")
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	order := "ASC"
	if q.Descending {
		order = "DESC"
	}
	if q.AfterSeq > 0 {
		if q.Descending {
			where = append(where, "seq < "+arg(q.AfterSeq))
		} else {
			where = append(where, "seq > "+arg(q.AfterSeq))
		}
	}
	if !q.From.IsZero() {
		where = append(where, "time >= "+arg(presence.Millis(q.From)))
	}
	if !q.To.IsZero() {
		where = append(where, "time < "+arg(presence.Millis(q.To)))
	}
	sql := `SELECT seq, channel_id, event_type, client_id, time, client_ip, node, epoch, reason,
	        username, keepalive, clean_session, applied_at, source, takeover_by, tls_version, tls_client_subject,
	        coalesce(protocol_level, 0), reason_code
	    FROM events WHERE ` + strings.Join(where, " AND ") + `
	    ORDER BY seq ` + order + ` LIMIT ` + arg(clampLimit(q.Limit))
	rows, _ := s.pool.Query(ctx, sql, args...)
	events := []presence.StoredEvent{}
	var (
		e          presence.StoredEvent
		reasonCode *int16
	)
	_, err := pgx.ForEachRow(rows, []any{&e.Seq, &e.ChannelID, &e.Type, &e.ClientID, &e.Time, &e.ClientIP,
		&e.Node, &e.Epoch, &e.Reason, &e.Username, &e.Keepalive, &e.CleanSession, &e.AppliedAt, &e.Source, &e.TakeoverBy,
		&e.TLSVersion, &e.TLSClientSubject, &e.ProtocolLevel, &reasonCode}, func() error {
		stored := e
		stored.ReasonCode = intPtr(reasonCode)
		if e.CleanSession != nil {
			v := *e.CleanSession
			stored.CleanSession = &v
		}
		events = append(events, stored)
		return nil
	})
	if err != nil {
		return nil, storeErr("read history", err)
	}
	return events, nil
}

func timePtr(ms *int64) *time.Time {
	if ms == nil {
		return nil
	}
	t := presence.FromMillis(*ms)
	return &t
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// intPtr copies a nullable small integer column.
func intPtr(v *int16) *int {
	if v == nil {
		return nil
	}
	n := int(*v)
	return &n
}
