package pgstore_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// nodeChanges reads the whole webhook feed after afterSeq a page of limit
// at a time, checks that it comes in strictly ascending seq order and that
// it ends at the head, and returns its node changes as "client state node".
func nodeChanges(t *testing.T, s *pgstore.Store, limit int) []string {
	t.Helper()
	var out []string
	var cursor, last int64
	for {
		b, err := s.WebhookFeed(ctx, cursor, limit)
		if err != nil {
			t.Fatalf("WebhookFeed: %v", err)
		}
		if len(b.Channels)+len(b.Nodes) > limit {
			t.Fatalf("a batch of %d changes, limit %d", len(b.Channels)+len(b.Nodes), limit)
		}
		seqs := map[int64]bool{}
		for _, c := range b.Channels {
			seqs[c.Seq] = true
		}
		for _, n := range b.Nodes {
			seqs[n.Seq] = true
			if n.SilentSince == 0 || n.RecordedAt == 0 || n.Epoch == "" {
				t.Fatalf("node change without its evidence: %+v", n)
			}
			out = append(out, fmt.Sprintf("%s %s %s", n.ClientID, n.State, n.Node))
		}
		for seq := range seqs {
			if seq <= last || seq > b.UptoSeq {
				t.Fatalf("seq %d outside (%d, %d]", seq, last, b.UptoSeq)
			}
		}
		if b.UptoSeq == cursor {
			break
		}
		last, cursor = b.UptoSeq, b.UptoSeq
	}
	if head, err := s.FeedHead(ctx); err != nil || cursor != head {
		t.Fatalf("the feed ended at %d, head %d (%v)", cursor, head, err)
	}
	return out
}

// TestNodeSilenceRecordsUnknownOnceThenOnline: a node that misses its lease
// records "unknown" for the clients whose open channels are all on silent
// nodes — once, however many lease monitors decide it at the same time;
// its next report records "online" for them, once; a second silent spell
// is a new transition; the rows come through the webhook feed in seq
// order, in pages of any size; rows every hook has passed are pruned.
func TestNodeSilenceRecordsUnknownOnceThenOnline(t *testing.T) {
	s := pgtest.NewStore(t)
	const lease, grace = time.Minute, time.Hour
	for _, node := range []string{"n1", "n2"} {
		start := nodeEvent(node, "e1", presence.NodeStart, 1)
		start.LeaseMillis = lease.Milliseconds()
		mustNodeEvent(t, s, start)
	}
	// A hook keeps the rows it has yet to deliver.
	if _, claimed, err := s.ClaimWebhookCursor(ctx, "ops", "p1", time.Minute); err != nil || !claimed {
		t.Fatalf("claim a hook's cursor: %v %v", claimed, err)
	}
	mustApply(t, s, connectOn("a", "ch-a", "n1", "e1"),
		connectOn("b", "ch-b1", "n1", "e1"), connectOn("b", "ch-b2", "n2", "e1"),
		connectOn("c", "ch-c", "n2", "e1"))

	ageNode(t, s, "n1", lease+time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 { // four lease monitors at once
		wg.Go(func() {
			if _, err := s.ExpireNodes(ctx, grace, ""); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("ExpireNodes: %v", err)
	}
	if _, err := s.ExpireNodes(ctx, grace, ""); err != nil {
		t.Fatal(err)
	}
	want := []string{"a unknown n1"} // b is online on n2 still
	if got := nodeChanges(t, s, 100); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after n1 went silent: %v, want %v", got, want)
	}

	spell := oneSpell(t, s, "n1")
	if spell.EndSeq != 0 || spell.StartSeq == 0 || spell.SilentSince == 0 {
		t.Fatalf("spell %+v, want n1 silent from a seq, not ended", spell)
	}

	beat := nodeEvent("n1", "e1", presence.NodeHeartbeat, 2)
	beat.LeaseMillis = lease.Milliseconds()
	mustNodeEvent(t, s, beat)
	if ended := oneSpell(t, s, "n1"); ended.StartSeq != spell.StartSeq || ended.EndSeq <= spell.StartSeq {
		t.Fatalf("spell %+v after n1 reported, want %+v ended", ended, spell)
	}
	beat.Seq = 3
	mustNodeEvent(t, s, beat) // alive already: nothing more
	want = append(want, "a online n1")
	if got := nodeChanges(t, s, 100); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after n1 reported again: %v, want %v", got, want)
	}

	// A second spell, then n2 silent too: b's channels are now all on
	// silent nodes, and c's.
	ageNode(t, s, "n1", lease+time.Second)
	if _, err := s.ExpireNodes(ctx, grace, ""); err != nil {
		t.Fatal(err)
	}
	ageNode(t, s, "n2", lease+time.Second)
	if _, err := s.ExpireNodes(ctx, grace, ""); err != nil {
		t.Fatal(err)
	}
	want = append(want, "a unknown n1", "b unknown n2", "c unknown n2")
	for _, limit := range []int{1, 2, 100} {
		if got := nodeChanges(t, s, limit); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("pages of %d: %v, want %v", limit, got, want)
		}
	}

	// Once the hook has passed them, the next silence prunes them.
	head, err := s.FeedHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if held, err := s.SaveWebhookCursor(ctx, "ops", "p1", head, time.Minute); err != nil || !held {
		t.Fatalf("save the hook's cursor: %v %v", held, err)
	}
	beat.Seq = 4
	mustNodeEvent(t, s, beat) // n1 back: a, and b (n1 alive again)
	ageNode(t, s, "n1", lease+time.Second)
	if _, err := s.ExpireNodes(ctx, grace, ""); err != nil {
		t.Fatal(err)
	}
	want = []string{"a online n1", "b online n1", "a unknown n1", "b unknown n1"}
	if got := nodeChanges(t, s, 100); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after the hook passed the first rows and n1 went silent again: %v, want %v", got, want)
	}
}

// oneSpell returns the only silent spell of node the feed knows from its
// start.
func oneSpell(t *testing.T, s *pgstore.Store, node string) pgstore.SilentSpell {
	t.Helper()
	b, err := s.WebhookFeed(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var found []pgstore.SilentSpell
	for _, sp := range b.Spells {
		if sp.Node == node {
			found = append(found, sp)
		}
	}
	if len(found) != 1 {
		t.Fatalf("spells of %s: %+v, want one", node, found)
	}
	return found[0]
}
