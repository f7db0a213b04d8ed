package consumer

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

func event(t presence.EventType, n int) presence.Event {
	return presence.Event{ClientID: fmt.Sprintf("c%d", n), ChannelID: fmt.Sprintf("ch%d", n), Type: t, Time: int64(n + 1)}
}

func TestQueueRefusesConnectsWhenFullButNeverCloses(t *testing.T) {
	q := NewQueue(2)
	for i := range 2 {
		if err := q.Emit(event(presence.EventConnect, i)); err != nil {
			t.Fatalf("connect %d refused below the limit: %v", i, err)
		}
	}
	err := q.Emit(event(presence.EventConnect, 2))
	if presence.ErrorCode(err) != presence.EOVERLOADED {
		t.Fatalf("connect over the limit: %v, want EOVERLOADED", err)
	}
	// The truth about admitted clients must not be lost.
	for _, typ := range []presence.EventType{presence.EventDisconnect, presence.EventTCPClean} {
		if err := q.Emit(event(typ, 0)); err != nil {
			t.Fatalf("%s refused over the limit: %v", typ, err)
		}
	}
	if q.Len() != 4 || q.Refused() != 1 {
		t.Fatalf("Len=%d Refused=%d, want 4 and 1", q.Len(), q.Refused())
	}
}

func TestQueueNextBatchesInOrderAndDrainsAfterClose(t *testing.T) {
	q := NewQueue(100)
	for i := range 5 {
		_ = q.Emit(event(presence.EventConnect, i))
	}
	ctx := context.Background()
	batch, err := q.Next(ctx, 3)
	if err != nil || len(batch) != 3 || batch[0].Event.ClientID != "c0" || batch[2].Event.ClientID != "c2" {
		t.Fatalf("first batch %v, %v", batch, err)
	}
	q.Close()
	if err := q.Emit(event(presence.EventTCPClean, 9)); !errors.Is(err, ErrQueueClosed) {
		t.Fatalf("Emit after Close = %v, want ErrQueueClosed", err)
	}
	batch, err = q.Next(ctx, 10)
	if err != nil || len(batch) != 2 || batch[0].Event.ClientID != "c3" {
		t.Fatalf("drain after close: %v, %v", batch, err)
	}
	if _, err := q.Next(ctx, 10); !errors.Is(err, ErrQueueClosed) {
		t.Fatalf("Next on closed empty queue = %v", err)
	}
}

func TestQueueNextWaitsForEventsOrContext(t *testing.T) {
	q := NewQueue(10)
	got := make(chan []Message)
	go func() {
		batch, _ := q.Next(context.Background(), 10)
		got <- batch
	}()
	_ = q.Emit(event(presence.EventConnect, 1))
	select {
	case batch := <-got:
		if len(batch) != 1 {
			t.Fatalf("woke with %v", batch)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next did not wake up on Emit")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := q.Next(ctx, 10); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next with cancelled context = %v", err)
	}
}
