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
	start := presence.NodeEvent{Node: "n1", Epoch: "e1", Type: presence.NodeStart, Time: 1, Seq: 1, LeaseMillis: 100}
	if _, err := h.store.ApplyNodeEvent(ctx, start); err != nil {
		t.Fatal(err)
	}
	connect := ev("dev-1", "ch-1", presence.EventConnect, 1_732_240_000_000)
	connect.Node, connect.Epoch = "n1", "e1"
	h.apply(connect)

	var nodes nodesResponse
	h.getJSON("/nodes", http.StatusOK, &nodes)
	if len(nodes.Items) != 1 || nodes.Items[0].State != presence.NodeAlive || nodes.Items[0].OpenChannels != 1 {
		t.Fatalf("nodes %+v, want n1 alive with one open channel", nodes.Items)
	}

	time.Sleep(150 * time.Millisecond) // the lease is judged on the database's clock
	if _, err := h.store.ExpireNodes(ctx, time.Hour, ""); err != nil {
		t.Fatal(err)
	}
	h.getJSON("/nodes", http.StatusOK, &nodes)
	if nodes.Items[0].State != presence.NodeSilent || nodes.Items[0].SilentSince == nil {
		t.Fatalf("nodes %+v, want n1 silent", nodes.Items)
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
