package main

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestReadinessIsCheckedAtMostOncePerInterval: /readyz is open to anyone
// who reaches the port, and every check is a database query, so an answer
// is reused for readyFor; after it the database is asked again.
func TestReadinessIsCheckedAtMostOncePerInterval(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	d := &database{store: pgtest.NewStore(t), log: slog.New(slog.DiscardHandler)}
	d.ready.now = func() time.Time { return now }
	ctx := context.Background()
	if err := d.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	d.store.Close() // the database goes away
	now = now.Add(readyFor - time.Millisecond)
	if err := d.Ready(ctx); err != nil {
		t.Fatalf("Ready within %v of the last check: %v, want the answer reused", readyFor, err)
	}
	now = now.Add(time.Millisecond)
	if err := d.Ready(ctx); presence.ErrorCode(err) != presence.EUNAVAILABLE {
		t.Fatalf("Ready %v after the last check: %v, want the database asked (unavailable)", readyFor, err)
	}
	// A caller that gives up does not decide the next answer.
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	now = now.Add(readyFor)
	d.Ready(canceled)
	if !d.ready.at.Equal(now.Add(-readyFor)) {
		t.Fatal("a canceled check was cached")
	}
}
