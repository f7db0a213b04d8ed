package pgstore_test

import (
	"errors"
	"math"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// mustIngest ingests events that must be accepted.
func mustIngest(t *testing.T, s *pgstore.Store, events ...presence.Event) pgstore.ApplyResult {
	t.Helper()
	res, err := s.Ingest(ctx, events)
	if err != nil {
		t.Fatalf("Ingest: %v", err)
	}
	return res
}

// refusedFields ingests events that must be refused as a conflict and
// returns the fields the error names.
func refusedFields(t *testing.T, s *pgstore.Store, events ...presence.Event) map[string]string {
	t.Helper()
	res, err := s.Ingest(ctx, events)
	if code := presence.ErrorCode(err); code != "conflict" {
		t.Fatalf("Ingest = %+v, %v (code %q), want a conflict", res, err, code)
	}
	problems, ok := errors.AsType[presence.Problems](err)
	if !ok {
		t.Fatalf("conflict %v lists no events", err)
	}
	fields := map[string]string{}
	for _, p := range problems {
		fields[p.Field] = p.Message
	}
	return fields
}

// sources returns the stored source of every event of a channel, by type.
func sources(t *testing.T, s *pgstore.Store, channelID string) map[presence.EventType]string {
	t.Helper()
	rows, _ := s.Pool().Query(ctx, "SELECT event_type, source FROM events WHERE channel_id = $1", channelID)
	out := map[presence.EventType]string{}
	var typ, source string
	if _, err := pgx.ForEachRow(rows, []any{&typ, &source}, func() error { out[presence.EventType(typ)] = source; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestIngestCannotCloseALiveBrokersChannel(t *testing.T) {
	s := pgtest.NewStore(t)
	mustNodeEvent(t, s, nodeEvent("broker-a", "e1", presence.NodeStart, 1))
	live := connectOn("victim", "ch-live", "broker-a", "e1")
	live.NodeSeq = 2
	mustApply(t, s, live)

	// A forged tcpclean, with the node's name or without any: the channel
	// is the broker's either way.
	forged := ev("victim", "ch-live", presence.EventTCPClean, 10)
	anonymous := forged
	anonymous.Node, anonymous.Epoch = "", ""
	for _, e := range []presence.Event{forged, anonymous} {
		fields := refusedFields(t, s, e)
		if len(fields) != 1 || (fields["[0].node"] == "" && fields["[0].channelId"] == "") {
			t.Fatalf("conflict names %v, want event [0]", fields)
		}
	}
	if st := mustOnline(t, s, "victim"); !st.Online {
		t.Fatalf("victim after forged tcpcleans: %+v, want online", st)
	}
	if got := sources(t, s, "ch-live"); len(got) != 1 || got[presence.EventConnect] != "broker" {
		t.Fatalf("stored events of ch-live: %v, want only the broker's connect", got)
	}
}

func TestIngestCannotOpenChannelsOfAKnownNode(t *testing.T) {
	s := pgtest.NewStore(t)
	mustNodeEvent(t, s, nodeEvent("broker-a", "e1", presence.NodeStart, 1))
	mustNodeEvent(t, s, nodeEvent("broker-l", "e1", presence.NodeStart, 1))
	// A lost node is refused too: it may come back with the same epoch.
	if _, err := s.Pool().Exec(ctx, "UPDATE nodes SET state = 'lost' WHERE node = 'broker-l'"); err != nil {
		t.Fatal(err)
	}
	external := ev("ok", "ch-external", presence.EventConnect, 0)
	external.Node, external.Epoch = "webhook-broker", ""
	fields := refusedFields(t, s, external, connectOn("ghost", "ch-forged", "broker-a", "e1"), connectOn("ghost2", "ch-forged2", "broker-l", "e1"))
	if len(fields) != 2 || fields["[1].node"] == "" || fields["[2].node"] == "" {
		t.Fatalf("conflict names %v, want [1].node and [2].node", fields)
	}
	// All or none: the valid first event was not stored either.
	for _, client := range []string{"ok", "ghost", "ghost2"} {
		if st := mustOnline(t, s, client); st.Online {
			t.Fatalf("%s online after a refused batch: %+v", client, st)
		}
	}
	// Alone, the external broker's event is accepted and marked as ingested.
	if res := mustIngest(t, s, external); len(res.Applied) != 1 {
		t.Fatalf("external event: %+v", res)
	}
	if !mustOnline(t, s, "ok").Online || sources(t, s, "ch-external")[presence.EventConnect] != "api" {
		t.Fatalf("external event not stored online with source api: %v", sources(t, s, "ch-external"))
	}
}

// TestIngestedNodeSeqCannotSurviveReconciliation: an ingested connect
// claims a node that has not reported yet, with the largest nodeSeq. When
// that node does report (same epoch: the worst case), its channel set
// closes the forged channel, because the ingested nodeSeq was not kept.
func TestIngestedNodeSeqCannotSurviveReconciliation(t *testing.T) {
	s := pgtest.NewStore(t)
	forged := connectOn("forged", "ch-forged", "broker-b", "e1")
	forged.NodeSeq = math.MaxInt64
	res := mustIngest(t, s, forged)
	if len(res.Applied) != 1 {
		t.Fatalf("ingest: %+v", res)
	}
	var nodeSeq int64
	if err := s.Pool().QueryRow(ctx, "SELECT node_seq FROM events WHERE channel_id = 'ch-forged'").Scan(&nodeSeq); err != nil || nodeSeq != 0 {
		t.Fatalf("stored node_seq %d (%v), want 0: the node reported nothing", nodeSeq, err)
	}
	mustNodeEvent(t, s, nodeEvent("broker-b", "e1", presence.NodeStart, 1))
	report := nodeEvent("broker-b", "e1", presence.NodeChannels, 5)
	closed := mustNodeEvent(t, s, report)
	if reasonsOf(closed)["ch-forged"] != presence.ReasonReconciled {
		t.Fatalf("reconciliation closed %v, want ch-forged", reasonsOf(closed))
	}
	if mustOnline(t, s, "forged").Online {
		t.Fatal("forged client online after its node's channel report")
	}
	got := sources(t, s, "ch-forged")
	if got[presence.EventConnect] != "api" || got[presence.EventTCPClean] != "store" {
		t.Fatalf("sources %v, want the connect from api and the close from the store", got)
	}
}

func TestIngestIsIdempotent(t *testing.T) {
	s := pgtest.NewStore(t)
	events := []presence.Event{ev("w", "ch-w", presence.EventConnect, 0), ev("w", "ch-w", presence.EventConnect, 0)}
	events[0].Node, events[1].Node = "", ""
	if res := mustIngest(t, s, events...); len(res.Applied) != 1 || res.Duplicates != 1 {
		t.Fatalf("first ingest: %+v", res)
	}
	if res := mustIngest(t, s, events[0]); len(res.Applied) != 0 || res.Duplicates != 1 {
		t.Fatalf("second ingest: %+v", res)
	}
	if res := mustIngest(t, s); len(res.Applied) != 0 {
		t.Fatalf("empty ingest: %+v", res)
	}
}
