package pgstore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// TestRefusedConnects: refusals are stored and read back newest first,
// each client keeps about its newest 100, and retention removes the old.
func TestRefusedConnects(t *testing.T) {
	s := pgtest.NewStore(t)
	refusal := func(client string, code int) presence.RefusedConnect {
		return presence.RefusedConnect{ClientID: client, Time: 1000, ReturnCode: code, Reason: "bad user name or password",
			ClientIP: "192.0.2.7:4000", Username: "dev", Node: "n1"}
	}
	if err := s.RecordRefused(ctx, []presence.RefusedConnect{refusal("a", 4), refusal("b", 5)}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordRefused(ctx, []presence.RefusedConnect{refusal("a", 2)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.RefusedConnects(ctx, "a", 10)
	if err != nil || len(got) != 2 || got[0].ReturnCode != 2 || got[1].ReturnCode != 4 || got[1].Username != "dev" ||
		got[1].ClientIP != "192.0.2.7:4000" || got[1].Node != "n1" || got[1].RecordedAt.IsZero() {
		t.Fatalf("refused connects of a: %+v, %v", got, err)
	}
	for i := range 130 {
		if err := s.RecordRefused(ctx, []presence.RefusedConnect{refusal("flood", 4)}); err != nil {
			t.Fatalf("refusal %d: %v", i, err)
		}
	}
	var n int
	if err := s.Pool().QueryRow(ctx, "SELECT count(*) FROM refused_connects WHERE client_id = 'flood'").Scan(&n); err != nil || n > 101 {
		t.Fatalf("flood keeps %d refusals (%v), want about 100", n, err)
	}
	if pruned, err := s.PruneRefused(ctx, time.Now().Add(time.Hour)); err != nil || pruned != int64(n+3) {
		t.Fatalf("PruneRefused = %d, %v; want %d", pruned, err, n+3)
	}
	if got, _ := s.RefusedConnects(ctx, "b", 10); len(got) != 0 {
		t.Fatalf("after pruning: %s", fmt.Sprint(got))
	}
}
