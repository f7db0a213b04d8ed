package test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// storedEvent is a row of the events table, read directly from Postgres as
// independent evidence of what presenced stored.
type storedEvent struct {
	ChannelID  string
	EventType  string
	Reason     string
	Seq        int64
	Xmin       string // the transaction that stored it
	TakeoverBy string
	AppliedAt  time.Time
}

// storedEvents returns the events stored for clientID in arrival order.
func storedEvents(t *testing.T, dbURL, clientID string) []storedEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect to %s: %v", dbURL, err)
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, `SELECT channel_id, event_type, coalesce(reason, ''), seq, xmin::text, takeover_by, applied_at FROM events WHERE client_id = $1 ORDER BY seq`, clientID)
	events, err := pgx.CollectRows(rows, pgx.RowToStructByPos[storedEvent])
	if err != nil {
		t.Fatalf("query events of %q: %v", clientID, err)
	}
	return events
}

// waitStoredEvents polls until the client has n events stored.
func waitStoredEvents(t *testing.T, dbURL, clientID string, n int) []storedEvent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		events := storedEvents(t, dbURL, clientID)
		if len(events) >= n {
			return events
		}
		if time.Now().After(deadline) {
			t.Fatalf("client %q has %d events stored, want %d: %+v", clientID, len(events), n, events)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
