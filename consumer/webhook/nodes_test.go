package webhook_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/presenced/presenced/consumer"
	"github.com/presenced/presenced/consumer/webhook"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

const nodeLease, nodeGrace = time.Minute, time.Hour

// reportNode reports a broker node's start or heartbeat (epoch e1).
func reportNode(t *testing.T, s *pgstore.Store, node string, typ presence.NodeEventType, seq uint64) {
	t.Helper()
	n := presence.NodeEvent{Node: node, Epoch: "e1", Type: typ, Time: baseTime, Seq: seq, LeaseMillis: nodeLease.Milliseconds()}
	if _, err := s.ApplyNodeEvent(context.Background(), n); err != nil {
		t.Fatalf("report %s %s: %v", node, typ, err)
	}
}

func connectOn(t *testing.T, s *pgstore.Store, client string, channel int, node string) {
	t.Helper()
	e := presence.Event{ClientID: client, ChannelID: channelID(channel), Type: presence.EventConnect, Time: baseTime + int64(channel),
		ClientIP: "203.0.113.7:52311", Node: node, Epoch: "e1"}
	if _, err := s.Apply(context.Background(), []presence.Event{e}); err != nil {
		t.Fatalf("connect %s on %s: %v", client, node, err)
	}
}

// ageNode moves node's lease times back by d, as if the database's clock
// (the one leases are judged on) had advanced by d: the lease monitor's
// clock, moved without sleeping.
func ageNode(t *testing.T, s *pgstore.Store, node string, d time.Duration) {
	t.Helper()
	if _, err := s.Pool().Exec(context.Background(), `
		UPDATE nodes SET last_seen = last_seen - $2 * interval '1 millisecond',
		       silent_since = silent_since - $2 * interval '1 millisecond'
		WHERE node = $1`, node, d.Milliseconds()); err != nil {
		t.Fatalf("age node %s: %v", node, err)
	}
}

// runLeaseMonitors runs n lease monitors, as n processes would, until the
// test ends.
func runLeaseMonitors(t *testing.T, s *pgstore.Store, n int) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, n)
	for range n {
		m := &consumer.LeaseMonitor{Every: 10 * time.Millisecond,
			Expire: func(ctx context.Context) ([]presence.StoredEvent, error) { return s.ExpireNodes(ctx, nodeGrace, "") }}
		go func() { _ = m.Run(ctx); done <- struct{}{} }()
	}
	t.Cleanup(func() {
		cancel()
		for range n {
			<-done
		}
	})
}

func (r *receiver) clearFaults() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults = nil
}

// requestsWith reports whether a request (taken or not) carried the change
// of client in state.
func (r *receiver) requestsWith(client, state string, after int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range r.requests {
		for _, c := range d.Changes {
			if c.ClientID == client && c.State == state && c.Seq > after {
				return true
			}
		}
	}
	return false
}

func nodeSummary(changes []webhook.Change) []string {
	out := make([]string, len(changes))
	for i, c := range changes {
		out[i] = fmt.Sprintf("%s %s %s", c.ClientID, c.State, c.Cause+string(c.Reason))
	}
	return out
}

// TestNodeSilenceIsAnnouncedAsUnknown: a client whose only channel is on a
// node that stops heartbeating is announced unknown, with the node as the
// evidence, and online again when the node reports again; a client that
// also has a channel on a live node hears nothing. A second silence, with
// the dispatcher restarted while its receiver fails, is announced once
// more (the same id in every attempt, before and after the restart), and
// the loss of the node then takes the client offline (node_lost). Two
// lease monitors run all along, as two processes would.
func TestNodeSilenceIsAnnouncedAsUnknown(t *testing.T) {
	s := pgtest.NewStore(t)
	recv := newReceiver(t, "k")
	reportNode(t, s, "n1", presence.NodeStart, 1)
	reportNode(t, s, "n2", presence.NodeStart, 1)
	runLeaseMonitors(t, s, 2)
	hook := newHook(recv, "ops")
	first := start(t, newDispatcher(s, "p1", hook))
	waitFor(t, "the lease", func() bool { return hook.Stats().Leader.Load() == 1 })

	connectOn(t, s, "a", 1, "n1")
	connectOn(t, s, "b", 2, "n1")
	connectOn(t, s, "b", 3, "n2") // b stays online through n2
	recv.waitChanges(2)

	ageNode(t, s, "n1", nodeLease+time.Second)
	got := recv.waitChanges(3)
	unknown := got[2]
	if unknown.ClientID != "a" || unknown.State != "unknown" || unknown.Online || unknown.Node != "n1" || unknown.Epoch != "e1" ||
		unknown.SilentSince == 0 || unknown.Cause != webhook.CauseNodeSilent || unknown.ChannelID != "" {
		t.Fatalf("unknown change %+v, want client a unknown on n1/e1 with silentSince", unknown)
	}

	reportNode(t, s, "n1", presence.NodeHeartbeat, 2)
	got = recv.waitChanges(4)
	if back := got[3]; back.ClientID != "a" || back.State != "online" || !back.Online || back.Node != "n1" ||
		back.SilentSince != unknown.SilentSince || back.Cause != webhook.CauseNodeBack {
		t.Fatalf("change after the node came back %+v, want a online, node_back, the same spell", back)
	}

	// The second silence: the receiver fails until the dispatcher that
	// tried it stopped; the next one delivers it.
	head, _ := s.FeedHead(context.Background())
	recv.addFaults(fail, fail, fail, fail, fail, fail, fail, fail, fail, fail, fail, fail, fail, fail, fail, fail)
	ageNode(t, s, "n1", nodeLease+time.Second)
	waitFor(t, "an attempt with the second unknown", func() bool { return recv.requestsWith("a", "unknown", head) })
	first.stop()
	recv.clearFaults()
	second := newHook(recv, "ops")
	start(t, newDispatcher(s, "p2", second))
	waitFor(t, "the second unknown delivered", func() bool { return second.Stats().Delivered.Load() >= 1 })

	ageNode(t, s, "n1", nodeGrace+time.Second) // past the grace: lost
	got = recv.waitChanges(6)
	want := []string{"a online ", "b online ", "a unknown node_silent", "a online node_back", "a unknown node_silent", "a offline node_lost"}
	if fmt.Sprint(nodeSummary(got)) != fmt.Sprint(want) {
		t.Fatalf("received\n%v\nwant\n%v", nodeSummary(got), want)
	}
	checkAscending(t, got)
	for _, c := range got {
		if c.ID != fmt.Sprintf("ops-%d", c.Seq) {
			t.Fatalf("change id %q for seq %d", c.ID, c.Seq)
		}
	}
	if repeats := recv.checkDuplicates(); repeats < 1 {
		t.Fatalf("%d repeated deliveries, want the failed ones repeated", repeats)
	}
	head, _ = s.FeedHead(context.Background())
	waitFor(t, "the cursor at the head", func() bool { return second.Stats().Cursor.Load() == head })
	if n := len(recv.unique()); n != 6 {
		t.Fatalf("%d distinct changes in the end, want 6 (b never changed)", n)
	}
}

func closeOn(t *testing.T, s *pgstore.Store, client string, channel int, node string) {
	t.Helper()
	e := presence.Event{ClientID: client, ChannelID: channelID(channel), Type: presence.EventTCPClean, Time: baseTime + 100 + int64(channel),
		ClientIP: "203.0.113.7:52311", Node: node, Epoch: "e1", Reason: presence.ReasonClientClosed}
	if _, err := s.Apply(context.Background(), []presence.Event{e}); err != nil {
		t.Fatalf("close %s on %s: %v", client, node, err)
	}
}

func waitNodeState(t *testing.T, s *pgstore.Store, node string, want presence.NodeState) {
	t.Helper()
	waitFor(t, node+" "+string(want), func() bool {
		nodes, err := s.Nodes(context.Background())
		for _, n := range nodes {
			if err == nil && n.Node == node {
				return n.State == want
			}
		}
		return false
	})
}

// TestChannelChangesWhileANodeIsSilent: while n1 is silent, a client's
// channels on the live n2 decide what the API answers, and the hook
// hears the same: its last channel on n2 closing leaves it unknown (the
// silent n1 as evidence), a new one on n2 makes it online, and n1 coming
// back makes it online from unknown. A dispatcher restarted in the middle
// against a failing receiver resends under the same ids, the same changes.
func TestChannelChangesWhileANodeIsSilent(t *testing.T) {
	s := pgtest.NewStore(t)
	recv := newReceiver(t, "k")
	reportNode(t, s, "n1", presence.NodeStart, 1)
	reportNode(t, s, "n2", presence.NodeStart, 1)
	runLeaseMonitors(t, s, 1)
	hook := newHook(recv, "ops")
	first := start(t, newDispatcher(s, "p1", hook))
	waitFor(t, "the lease", func() bool { return hook.Stats().Leader.Load() == 1 })

	connectOn(t, s, "c", 1, "n1")
	connectOn(t, s, "c", 2, "n2")
	recv.waitChanges(1)
	ageNode(t, s, "n1", nodeLease+time.Second)
	waitNodeState(t, s, "n1", presence.NodeSilent)
	closeOn(t, s, "c", 2, "n2") // c's channels are now all on the silent n1
	got := recv.waitChanges(2)
	if u := got[1]; u.State != "unknown" || u.Online || u.ChannelID != channelID(2) || u.SilentNode != "n1" || u.SilentSince == 0 ||
		u.Cause != webhook.CauseNodeSilent || u.Reason != presence.ReasonClientClosed {
		t.Fatalf("change %+v, want unknown: channel 2 closed, n1 silent", u)
	}

	recv.addFaults(fail, fail, fail, fail, fail, fail, fail, fail)
	connectOn(t, s, "c", 3, "n2")
	waitFor(t, "an attempt with c online", func() bool { return recv.requestsWith("c", "online", got[1].Seq) })
	first.stop()
	recv.clearFaults()
	second := newHook(recv, "ops")
	start(t, newDispatcher(s, "p2", second))
	waitFor(t, "c online delivered", func() bool { return second.Stats().Delivered.Load() >= 1 })
	closeOn(t, s, "c", 3, "n2")
	reportNode(t, s, "n1", presence.NodeHeartbeat, 2)
	closeOn(t, s, "c", 1, "n1")
	got = recv.waitChanges(6)
	want := []string{"c online ", "c unknown node_silentclient_closed", "c online ", "c unknown node_silentclient_closed",
		"c online node_back", "c offline client_closed"}
	if fmt.Sprint(nodeSummary(got)) != fmt.Sprint(want) {
		t.Fatalf("received\n%v\nwant\n%v", nodeSummary(got), want)
	}
	checkAscending(t, got)
	if repeats := recv.checkDuplicates(); repeats < 1 {
		t.Fatalf("%d repeated deliveries, want the failed ones repeated", repeats)
	}
}
