package pgstore_test

import (
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// TestWebhookCursorLease: a new hook starts at the head of the feed; one
// owner at a time holds its lease; the cursor only moves forward; an
// expired lease passes to the next claimant, and its old holder can no
// longer save.
func TestWebhookCursorLease(t *testing.T) {
	s := pgtest.NewStore(t)
	mustApply(t, s, ev("a", "a1", presence.EventConnect, 100))
	head, err := s.FeedHead(ctx)
	if err != nil || head == 0 {
		t.Fatalf("feed head %d, %v", head, err)
	}
	cursor, claimed, err := s.ClaimWebhookCursor(ctx, "ops", "pa", 300*time.Millisecond)
	if err != nil || !claimed || cursor != head {
		t.Fatalf("first claim: cursor %d (head %d), claimed %v, %v", cursor, head, claimed, err)
	}
	if _, claimed, err := s.ClaimWebhookCursor(ctx, "ops", "pb", time.Minute); err != nil || claimed {
		t.Fatalf("a second owner claimed a held lease: %v, %v", claimed, err)
	}
	if held, err := s.SaveWebhookCursor(ctx, "ops", "pa", head+5, 300*time.Millisecond); err != nil || !held {
		t.Fatalf("save by the holder: %v, %v", held, err)
	}
	if held, _ := s.SaveWebhookCursor(ctx, "ops", "pa", head+1, 300*time.Millisecond); !held {
		t.Fatal("save of an older cursor lost the lease")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		cursor, claimed, err = s.ClaimWebhookCursor(ctx, "ops", "pb", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if claimed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the expired lease never passed on")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if cursor != head+5 {
		t.Fatalf("cursor %d after the handover, want %d (never back)", cursor, head+5)
	}
	if held, err := s.SaveWebhookCursor(ctx, "ops", "pa", head+9, time.Minute); err != nil || held {
		t.Fatalf("the old holder saved after losing the lease: %v, %v", held, err)
	}
	if err := s.ReleaseWebhookCursor(ctx, "ops", "pb"); err != nil {
		t.Fatal(err)
	}
	if _, claimed, _ := s.ClaimWebhookCursor(ctx, "ops", "pa", time.Minute); !claimed {
		t.Fatal("a released lease was not free")
	}
}
