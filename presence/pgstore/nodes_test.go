package pgstore_test

import (
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

func nodeEvent(node, epoch string, typ presence.NodeEventType, seq uint64) presence.NodeEvent {
	return presence.NodeEvent{Node: node, Epoch: epoch, Type: typ, Time: baseTime, Seq: seq, LeaseMillis: 30_000}
}

// connectOn builds a connect of client on node/epoch.
func connectOn(client, channel, node, epoch string) presence.Event {
	e := ev(client, channel, presence.EventConnect, 0)
	e.Node, e.Epoch = node, epoch
	return e
}

func mustNodeEvent(t *testing.T, s *pgstore.Store, n presence.NodeEvent) []presence.StoredEvent {
	t.Helper()
	closed, err := s.ApplyNodeEvent(ctx, n)
	if err != nil {
		t.Fatalf("ApplyNodeEvent(%+v): %v", n, err)
	}
	return closed
}

func reasonsOf(events []presence.StoredEvent) map[string]presence.Reason {
	out := map[string]presence.Reason{}
	for _, e := range events {
		out[e.ChannelID] = e.Reason
	}
	return out
}

func TestNewEpochFencesChannelsOfOldEpoch(t *testing.T) {
	s := pgtest.NewStore(t)
	mustNodeEvent(t, s, nodeEvent("n1", "e1", presence.NodeStart, 1))
	mustApply(t, s, connectOn("a", "ch-a", "n1", "e1"), connectOn("b", "ch-b", "n1", "e1"), connectOn("c", "ch-c", "n2", "x1"))
	closed := mustNodeEvent(t, s, nodeEvent("n1", "e2", presence.NodeStart, 1))
	if got := reasonsOf(closed); len(got) != 2 || got["ch-a"] != presence.ReasonNodeLost || got["ch-b"] != presence.ReasonNodeLost {
		t.Fatalf("closed %v, want ch-a and ch-b as node_lost", got)
	}
	if mustOnline(t, s, "a").Online || mustOnline(t, s, "b").Online {
		t.Fatal("clients of the old epoch still online")
	}
	if !mustOnline(t, s, "c").Online {
		t.Fatal("a client of another node was closed")
	}
	// A late real tcpclean of a fenced channel changes nothing; a late
	// connect of the old epoch does not reopen anything.
	mustApply(t, s, ev("a", "ch-a", presence.EventTCPClean, 5))
	mustApply(t, s, connectOn("d", "ch-d", "n1", "e1"))
	closed = mustNodeEvent(t, s, nodeEvent("n1", "e1", presence.NodeHeartbeat, 9)) // late report of the old epoch
	if got := reasonsOf(closed); got["ch-d"] != presence.ReasonNodeLost {
		t.Fatalf("late connect of a fenced epoch not closed: %v", got)
	}
	nodes, err := s.Nodes(ctx)
	if err != nil || len(nodes) != 1 || nodes[0].Epoch != "e2" || nodes[0].State != presence.NodeAlive {
		t.Fatalf("nodes %+v %v, want n1 alive on e2", nodes, err)
	}
}

func TestEpochOrderUsesGenerationNotArrival(t *testing.T) {
	s := pgtest.NewStore(t)
	newer := nodeEvent("n1", "new", presence.NodeStart, 1)
	newer.Generation = 8
	older := nodeEvent("n1", "old", presence.NodeHeartbeat, 50)
	older.Generation = 7
	mustNodeEvent(t, s, newer)
	mustApply(t, s, connectOn("a", "ch-new", "n1", "new"))
	mustNodeEvent(t, s, older) // arrives later, but is older
	if !mustOnline(t, s, "a").Online {
		t.Fatal("a late report of an older generation fenced the current epoch")
	}
	nodes, _ := s.Nodes(ctx)
	if nodes[0].Epoch != "new" {
		t.Fatalf("current epoch %q, want new", nodes[0].Epoch)
	}
}

func TestReconciliationClosesChannelsTheBrokerNoLongerHolds(t *testing.T) {
	s := pgtest.NewStore(t)
	mustNodeEvent(t, s, nodeEvent("n1", "e1", presence.NodeStart, 1))
	held, lost, later := connectOn("a", "ch-held", "n1", "e1"), connectOn("b", "ch-lost", "n1", "e1"), connectOn("c", "ch-later", "n1", "e1")
	held.NodeSeq, lost.NodeSeq, later.NodeSeq = 2, 3, 11
	mustApply(t, s, held, lost, later)
	report := nodeEvent("n1", "e1", presence.NodeChannels, 10)
	report.Channels = []string{"ch-held"}
	closed := mustNodeEvent(t, s, report)
	if got := reasonsOf(closed); len(got) != 1 || got["ch-lost"] != presence.ReasonReconciled {
		t.Fatalf("closed %v, want only ch-lost as reconciled (ch-later connected after the report)", got)
	}
	if !mustOnline(t, s, "a").Online || mustOnline(t, s, "b").Online || !mustOnline(t, s, "c").Online {
		t.Fatal("wrong presence after reconciliation")
	}
}

func TestCleanStopClosesRemainingChannels(t *testing.T) {
	s := pgtest.NewStore(t)
	mustNodeEvent(t, s, nodeEvent("n1", "e1", presence.NodeStart, 1))
	mustApply(t, s, connectOn("a", "ch-a", "n1", "e1"))
	closed := mustNodeEvent(t, s, nodeEvent("n1", "e1", presence.NodeStop, 5))
	if got := reasonsOf(closed); got["ch-a"] != presence.ReasonServerShutdown {
		t.Fatalf("closed %v, want ch-a as server_shutdown", got)
	}
	nodes, _ := s.Nodes(ctx)
	if nodes[0].State != presence.NodeStopped {
		t.Fatalf("state %q, want stopped", nodes[0].State)
	}
}

func TestLeaseExpiryMakesNodeSilentThenLost(t *testing.T) {
	s := pgtest.NewStore(t)
	// The lease is judged on the database's clock, and the store has no
	// clock to inject: the test moves the node's stored times back instead
	// of sleeping, and keeps a minute between every limit and now, so no
	// step depends on how fast the machine runs.
	const lease, grace = time.Minute, time.Minute
	start := nodeEvent("n1", "e1", presence.NodeStart, 1)
	start.LeaseMillis = lease.Milliseconds()
	mustNodeEvent(t, s, start)
	mustApply(t, s, connectOn("a", "ch-a", "n1", "e1"))
	if closed, err := s.ExpireNodes(ctx, grace, ""); err != nil || len(closed) != 0 {
		t.Fatalf("ExpireNodes within the lease: %v %v", closed, err)
	}
	if nodes, _ := s.Nodes(ctx); nodes[0].State != presence.NodeAlive {
		t.Fatalf("node %+v within its lease, want alive", nodes[0])
	}
	ageNode(t, s, "n1", lease+time.Second) // the lease ran out a second ago
	if closed, err := s.ExpireNodes(ctx, grace, ""); err != nil || len(closed) != 0 {
		t.Fatalf("ExpireNodes within the grace: %v %v", closed, err)
	}
	nodes, _ := s.Nodes(ctx)
	if nodes[0].State != presence.NodeSilent || nodes[0].SilentSince == nil || nodes[0].OpenChannels != 1 {
		t.Fatalf("node %+v, want silent with one open channel", nodes[0])
	}
	ageNode(t, s, "n1", grace) // silent for the grace and a second
	closed, err := s.ExpireNodes(ctx, grace, "")
	if err != nil || reasonsOf(closed)["ch-a"] != presence.ReasonNodeLost {
		t.Fatalf("ExpireNodes past the grace: %v %v, want ch-a closed as node_lost", closed, err)
	}
	if mustOnline(t, s, "a").Online {
		t.Fatal("client of a lost node still online")
	}
}

// ageNode moves the lease times of node back by d, as if the
// database's clock had advanced by d since its last report.
func ageNode(t *testing.T, s *pgstore.Store, node string, d time.Duration) {
	t.Helper()
	if _, err := s.Pool().Exec(ctx, `
		UPDATE nodes SET last_seen = last_seen - $2 * interval '1 millisecond',
		       silent_since = silent_since - $2 * interval '1 millisecond'
		WHERE node = $1`, node, d.Milliseconds()); err != nil {
		t.Fatalf("age node %s: %v", node, err)
	}
}
