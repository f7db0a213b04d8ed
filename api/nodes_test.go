package api

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

// TestNodesAndUnknownState: a node that misses its lease is listed as
// silent by GET /nodes, and its clients are answered "unknown" — not
// online, with the node and since when it is silent — until the grace
// period closes their channels.
func TestNodesAndUnknownState(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	// n2's lease (an hour) outlives the test: the control that ExpireNodes
	// judges each node by its own lease, not merely by the time since its
	// report. It reports first, so whenever n1 is found silent, n2 has
	// been silent at least as long.
	control := presence.NodeEvent{Node: "n2", Epoch: "e1", Type: presence.NodeStart, Time: 1, Seq: 1, LeaseMillis: 3_600_000}
	if _, err := h.store.ApplyNodeEvent(ctx, control); err != nil {
		t.Fatal(err)
	}
	start := presence.NodeEvent{Node: "n1", Epoch: "e1", Type: presence.NodeStart, Time: 1, Seq: 1, LeaseMillis: 100}
	if _, err := h.store.ApplyNodeEvent(ctx, start); err != nil {
		t.Fatal(err)
	}
	connect := ev("dev-1", "ch-1", presence.EventConnect, 1_732_240_000_000)
	connect.Node, connect.Epoch = "n1", "e1"
	h.apply(connect)

	var nodes nodesResponse
	h.getJSON("/nodes", http.StatusOK, &nodes)
	if len(nodes.Items) != 2 || nodes.Items[0].Node != "n1" || nodes.Items[0].State != presence.NodeAlive || nodes.Items[0].OpenChannels != 1 ||
		nodes.Items[1].State != presence.NodeAlive {
		t.Fatalf("nodes %+v, want n1 alive with one open channel, and n2 alive", nodes.Items)
	}

	// The lease is judged on the database's clock (now() in SQL), which no
	// test can move: real time has to pass. So wait for the outcome, not
	// for a guessed while: expire leases until n1 is silent.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := h.store.ExpireNodes(ctx, time.Hour, ""); err != nil {
			t.Fatal(err)
		}
		h.getJSON("/nodes", http.StatusOK, &nodes)
		if nodes.Items[0].State == presence.NodeSilent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes %+v 5 s after a 100 ms lease, want n1 silent", nodes.Items)
		}
	}
	n1, n2 := nodes.Items[0], nodes.Items[1]
	// Silent since its lease ran out: one lease after its last report.
	if n1.SilentSince == nil || n1.SilentSince.Sub(n1.LastHeartbeat) != 100*time.Millisecond {
		t.Fatalf("n1 %+v, want silent since one lease (100 ms) after its last report", n1)
	}
	if n2.State != presence.NodeAlive || n2.SilentSince != nil {
		t.Fatalf("n2 %+v, want alive: its lease has not run out", n2)
	}
	deadline := time.Now().Add(5 * time.Second)
	var st presence.Status
	for {
		h.getJSON("/clients/dev-1/online", http.StatusOK, &st)
		if st.State == presence.StateUnknown || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.State != presence.StateUnknown || st.Online || st.Node != "n1" || st.Since == nil {
		t.Fatalf("status %+v, want unknown, not online, node n1, since set", st)
	}
}
