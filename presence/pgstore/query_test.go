package pgstore_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

func TestOnlineFields(t *testing.T) {
	s := pgtest.NewStore(t)
	mustApply(t, s,
		ev("cl", "old", presence.EventConnect, 0), ev("cl", "old", presence.EventTCPClean, 10),
		ev("cl", "a", presence.EventConnect, 20), ev("cl", "b", presence.EventConnect, 30),
		ev("cl", "b", presence.EventDisconnect, 40),
	)
	st := mustOnline(t, s, "cl")
	if !st.Online || st.State != presence.StateOnline || st.OpenChannels != 2 || st.ClientID != "cl" {
		t.Fatalf("status %+v", st)
	}
	if st.Since == nil || !st.Since.Equal(presence.FromMillis(baseTime+20)) {
		t.Fatalf("Since = %v, want the earliest connect of an open channel", st.Since)
	}
	if st.LastEventAt == nil || !st.LastEventAt.Equal(presence.FromMillis(baseTime+40)) {
		t.Fatalf("LastEventAt = %v, want the newest event", st.LastEventAt)
	}

	unknown := mustOnline(t, s, "never-seen")
	if unknown.Online || unknown.State != presence.StateOffline || unknown.Since != nil || unknown.LastEventAt != nil {
		t.Fatalf("unknown client: %+v", unknown)
	}
	mustApply(t, s, ev("cl", "a", presence.EventTCPClean, 50), ev("cl", "b", presence.EventTCPClean, 60))
	off := mustOnline(t, s, "cl")
	if off.Online || off.Since != nil || off.LastEventAt == nil || !off.LastEventAt.Equal(presence.FromMillis(baseTime+60)) {
		t.Fatalf("offline client: %+v", off)
	}
}

func TestOnlineMany(t *testing.T) {
	s := pgtest.NewStore(t)
	mustApply(t, s, ev("on", "1", presence.EventConnect, 0), ev("off", "2", presence.EventConnect, 0),
		ev("off", "2", presence.EventTCPClean, 5), ev("on", "3", presence.EventConnect, 7))
	got, err := s.OnlineMany(ctx, []string{"off", "unknown", "on", "off"})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id     string
		online bool
		open   int
	}{{"off", false, 0}, {"unknown", false, 0}, {"on", true, 2}, {"off", false, 0}}
	if len(got) != len(want) {
		t.Fatalf("%d statuses for %d ids", len(got), len(want))
	}
	for i, w := range want {
		if got[i].ClientID != w.id || got[i].Online != w.online || got[i].OpenChannels != w.open {
			t.Fatalf("status %d: %+v, want %+v", i, got[i], w)
		}
		if single := mustOnline(t, s, w.id); fmt.Sprint(single) != fmt.Sprint(got[i]) {
			t.Fatalf("OnlineMany disagrees with Online for %s:\n%+v\n%+v", w.id, got[i], single)
		}
	}
	if empty, err := s.OnlineMany(ctx, nil); err != nil || len(empty) != 0 {
		t.Fatalf("OnlineMany(nil) = %v, %v", empty, err)
	}
}

func TestChannels(t *testing.T) {
	s := pgtest.NewStore(t)
	mustApply(t, s, ev("cl", "first", presence.EventConnect, 0))                                                     // open, oldest
	mustApply(t, s, ev("cl", "closed1", presence.EventConnect, 10), ev("cl", "closed1", presence.EventTCPClean, 25)) // closed by the client
	mustApply(t, s, ev("cl", "closed2", presence.EventConnect, 30),
		withReason(ev("cl", "closed2", presence.EventTCPClean, 40), presence.ReasonNodeLost)) // fenced
	mustApply(t, s, ev("other", "x", presence.EventConnect, 0))

	chans, err := s.Channels(ctx, "cl", 0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range chans {
		ids = append(ids, c.ChannelID)
	}
	if strings.Join(ids, ",") != "first,closed2,closed1" {
		t.Fatalf("channels %v, want open first, then newest", ids)
	}
	first, closed2, closed1 := chans[0], chans[1], chans[2]
	if !first.Open || first.ClosedBy != "" || first.DurationMillis != nil || first.ClientIP != "203.0.113.7:52311" || first.Node != "broker-a" {
		t.Fatalf("open channel: %+v", first)
	}
	if closed2.Open || closed2.ClosedBy != "fencing" || closed2.Reason != presence.ReasonNodeLost || *closed2.DurationMillis != 10 {
		t.Fatalf("fenced channel: %+v", closed2)
	}
	if closed1.ClosedBy != "client" || *closed1.DurationMillis != 15 || !closed1.TCPCleanAt.Equal(presence.FromMillis(baseTime+25)) {
		t.Fatalf("closed channel: %+v", closed1)
	}
	if limited, _ := s.Channels(ctx, "cl", 2); len(limited) != 2 || limited[0].ChannelID != "first" {
		t.Fatalf("limit 2: %+v", limited)
	}
}

func TestHistoryPagination(t *testing.T) {
	s := pgtest.NewStore(t)
	var all []presence.Event
	for i := range 125 {
		ch := fmt.Sprintf("ch%03d", i)
		all = append(all, ev("cl", ch, presence.EventConnect, int64(2*i)), ev("cl", ch, presence.EventTCPClean, int64(2*i+1)))
		all = append(all, ev("noise", "n"+ch, presence.EventConnect, int64(i)))
	}
	for i := 0; i < len(all); i += 37 {
		mustApply(t, s, all[i:min(i+37, len(all))]...)
	}

	pageAll := func(q presence.HistoryQuery) []presence.StoredEvent {
		var out []presence.StoredEvent
		for pages := 0; ; pages++ {
			page, err := s.History(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if pages > 100 {
				t.Fatal("pagination does not end")
			}
			out = append(out, page...)
			if len(page) < q.Limit {
				return out
			}
			q.AfterSeq = page[len(page)-1].Seq
		}
	}
	asc := pageAll(presence.HistoryQuery{ClientID: "cl", Limit: 40})
	if len(asc) != 250 {
		t.Fatalf("ascending pages hold %d events, want 250", len(asc))
	}
	for i := 1; i < len(asc); i++ {
		if asc[i].Seq <= asc[i-1].Seq || asc[i].ClientID != "cl" {
			t.Fatalf("ascending history out of order at %d", i)
		}
	}
	desc := pageAll(presence.HistoryQuery{ClientID: "cl", Limit: 33, Descending: true})
	if len(desc) != 250 || desc[0].Seq != asc[249].Seq || desc[249].Seq != asc[0].Seq {
		t.Fatalf("descending pages: %d events", len(desc))
	}

	// Time range: From inclusive, To exclusive, on the event time.
	from, to := presence.FromMillis(baseTime+10), presence.FromMillis(baseTime+20)
	ranged := pageAll(presence.HistoryQuery{ClientID: "cl", From: from, To: to, Limit: 3})
	if len(ranged) != 10 {
		t.Fatalf("time range holds %d events, want 10", len(ranged))
	}
	for _, e := range ranged {
		if e.Time < baseTime+10 || e.Time >= baseTime+20 {
			t.Fatalf("event at %d outside the range", e.Time)
		}
	}
	if capped, _ := s.History(ctx, presence.HistoryQuery{ClientID: "cl", Limit: 1 << 20}); len(capped) != 250 {
		t.Fatalf("large limit: %d events", len(capped))
	}
	if def, _ := s.History(ctx, presence.HistoryQuery{ClientID: "cl"}); len(def) != pgstore.DefaultLimit {
		t.Fatalf("default limit: %d events", len(def))
	}
	if asc[0].Username != "user" || asc[0].Keepalive != 60 || asc[0].AppliedAt.IsZero() || asc[1].Reason != presence.ReasonClientClosed {
		t.Fatalf("history lost details: %+v %+v", asc[0], asc[1])
	}
}

// TestSnapshotHoldsEveryOpenChannel: the view's starting point has every
// open channel with its details, and is as of the last applied seq.
func TestSnapshotHoldsEveryOpenChannel(t *testing.T) {
	s := pgtest.NewStore(t)
	var batch []presence.Event
	for i := range 30 {
		ch := fmt.Sprintf("ch%02d", i)
		batch = append(batch, ev(fmt.Sprintf("c%d", i%7), ch, presence.EventConnect, int64(i)))
		if i%3 == 0 {
			batch = append(batch, ev(fmt.Sprintf("c%d", i%7), ch, presence.EventTCPClean, int64(i)+1))
		}
	}
	res := mustApply(t, s, batch...)

	states, asOf, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var open []string
	for _, st := range states {
		if st.ChannelID == "" {
			continue // a client's newest event time
		}
		if !st.Open || st.ConnectAt == 0 || st.Node != "broker-a" || st.Epoch != "e1" || st.Username != "user" {
			t.Fatalf("open channel: %+v", st)
		}
		open = append(open, st.ChannelID)
	}
	slices.Sort(open)
	if len(open) != 20 || len(slices.Compact(slices.Clone(open))) != 20 {
		t.Fatalf("%d open channels in the snapshot, want 20 distinct: %v", len(open), open)
	}
	if last := res.Applied[len(res.Applied)-1].Seq; asOf != last {
		t.Fatalf("asOfSeq = %d, want the last applied seq %d", asOf, last)
	}
}

// explain returns the plan PostgreSQL chooses for sql with args.
func explain(t *testing.T, s *pgstore.Store, name, sql string, args ...any) string {
	t.Helper()
	rows, err := s.Pool().Query(ctx, "EXPLAIN "+sql, args...)
	if err != nil {
		t.Fatalf("EXPLAIN %s: %v", name, err)
	}
	var plan strings.Builder
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(line + "\n")
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	return plan.String()
}

// TestOnlineUsesIndexes checks the plans on a populated table: the online
// lookup reads the partial index of open channels and the newest event from
// an index, and scans no table.
func TestOnlineUsesIndexes(t *testing.T) {
	s := pgtest.NewStore(t)
	// 20 000 channels of 2 000 clients, most closed, with their events.
	_, err := s.Pool().Exec(ctx, `
		INSERT INTO events (channel_id, event_type, client_id, time)
		SELECT 'ch' || i, t, 'client-' || (i % 2000), 1732240000000 + i
		FROM generate_series(1, 20000) i, unnest(ARRAY['connect', 'tcpclean']) t
		WHERE t = 'connect' OR i % 10 <> 0;
		INSERT INTO channels (channel_id, client_id, connect_at, tcpclean_at, has_connect, has_tcpclean, first_seq, last_seq, closed_at)
		SELECT 'ch' || i, 'client-' || (i % 2000), 1732240000000 + i,
		       CASE WHEN i % 10 <> 0 THEN 1732240000000 + i END, true, i % 10 <> 0, i, i,
		       CASE WHEN i % 10 <> 0 THEN now() END
		FROM generate_series(1, 20000) i;
		ANALYZE events; ANALYZE channels;`)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		name, sql string
		args      []any
		index     string
	}{
		{"Online", pgstore.OnlineSQL, []any{"client-7"}, "channels_open_client"},
		{"OnlineMany", pgstore.OnlineManySQL, []any{[]string{"client-7", "client-8"}}, "channels_open_client"},
		{"Channels", pgstore.ChannelsSQL, []any{"client-7", 100}, "channels_client_last_seq"},
	} {
		plan := explain(t, s, q.name, q.sql, q.args...)
		t.Logf("%s plan:\n%s", q.name, plan)
		if strings.Contains(plan, "Seq Scan") || !strings.Contains(plan, q.index) {
			t.Fatalf("%s plan does not use %s without scanning a table:\n%s", q.name, q.index, plan)
		}
	}
	st := mustOnline(t, s, "client-0") // channels 2000, 4000, … are the open ones
	if st.OpenChannels != 10 {
		t.Fatalf("client-0 has %d open channels, want 10", st.OpenChannels)
	}
}

// TestApplyProbesChannelsByKey checks Apply's plans on a young store: a
// populated channels table that was never analyzed, as it is until
// autoanalyze first runs. A batch's events must be looked up in channels
// through its primary key, with or without a takeover to hold: a plan
// that scans channels reads the whole table for every batch (it did,
// throughout a connect storm into a fresh store).
func TestApplyProbesChannelsByKey(t *testing.T) {
	s := pgtest.NewStore(t)
	_, err := s.Pool().Exec(ctx, `
		INSERT INTO channels (channel_id, client_id, connect_at, has_connect, first_seq, last_seq)
		SELECT 'ch' || i, 'client-' || i, 1732240000000 + i, true, i, i
		FROM generate_series(1, 20000) i`)
	if err != nil {
		t.Fatal(err)
	}
	var fresh, takeover []presence.Event
	for i := range 500 {
		fresh = append(fresh, ev(fmt.Sprintf("new-%d", i), fmt.Sprintf("new-ch-%d", i), presence.EventConnect, int64(i)))
		close := ev(fmt.Sprintf("client-%d", i+1), fmt.Sprintf("ch%d", i+1), presence.EventTCPClean, int64(i))
		close.Reason, close.TakeoverBy = presence.ReasonTakeover, fmt.Sprintf("successor-%d", i)
		takeover = append(takeover, close)
	}
	for _, q := range []struct {
		name   string
		events []presence.Event
	}{{"new channels", fresh}, {"takeovers to hold", takeover}} {
		sql, args := pgstore.ApplyStatement(q.events)
		plan := explain(t, s, q.name, sql, args...)
		if strings.Contains(plan, "Seq Scan on channels") || !strings.Contains(plan, "channels_pkey") {
			t.Fatalf("%s: the plan does not probe channels_pkey without scanning channels:\n%s", q.name, plan)
		}
	}
}

// TestPruneDropsDaysAndKeepsOpenChannels ages most of a client's history
// into a day partition 30 days back: retention deletes the channel closed
// back then, drops the whole partition, and copies forward the events of
// the channels that survive — the one open for 30 days, the one only
// disconnected (not closed) — while a channel closed recently keeps its
// history where it is.
func TestPruneDropsDaysAndKeepsOpenChannels(t *testing.T) {
	s := pgtest.NewStore(t)
	mustApply(t, s,
		ev("cl", "open-old", presence.EventConnect, 0),
		ev("cl", "closed-old", presence.EventConnect, 0), ev("cl", "closed-old", presence.EventTCPClean, 1),
		ev("cl", "closed-new", presence.EventConnect, 0), ev("cl", "closed-new", presence.EventTCPClean, 1),
		ev("cl", "disconnected", presence.EventConnect, 0), ev("cl", "disconnected", presence.EventDisconnect, 1),
	)
	// Age everything but closed-new by 30 days on the store's clock, into
	// that day's partition.
	old := time.Now().UTC().AddDate(0, 0, -30).Truncate(24 * time.Hour)
	oldPartition := "events_d" + old.Format("20060102")
	if _, err := s.Pool().Exec(ctx, fmt.Sprintf(`CREATE TABLE %s PARTITION OF events FOR VALUES FROM ('%s') TO ('%s');
		UPDATE channels SET closed_at = closed_at - interval '30 days' WHERE channel_id <> 'closed-new';
		UPDATE events SET applied_at = applied_at - interval '30 days', part_day = '%s' WHERE channel_id <> 'closed-new'`,
		oldPartition, old.Format(time.DateOnly), old.AddDate(0, 0, 1).Format(time.DateOnly), old.Format(time.DateOnly))); err != nil {
		t.Fatal(err)
	}
	seqsBefore := eventSeqs(t, s, "open-old", "disconnected")
	p, err := s.Prune(ctx, time.Now().Add(-7*24*time.Hour))
	if err != nil || p.Channels != 1 || p.Partitions != 1 || p.Kept != 3 {
		t.Fatalf("Prune = %+v, %v; want 1 channel, 1 partition, 3 events kept", p, err)
	}
	var exists bool
	if err := s.Pool().QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", oldPartition).Scan(&exists); err != nil || exists {
		t.Fatalf("partition %s still exists (%v)", oldPartition, err)
	}
	chans, _ := s.Channels(ctx, "cl", 0)
	var ids []string
	for _, c := range chans {
		ids = append(ids, c.ChannelID)
	}
	if strings.Join(ids, ",") != "disconnected,open-old,closed-new" && strings.Join(ids, ",") != "open-old,disconnected,closed-new" {
		t.Fatalf("after prune: %v", ids)
	}
	var events int
	_ = s.Pool().QueryRow(ctx, "SELECT count(*) FROM events WHERE channel_id = 'closed-old'").Scan(&events)
	if events != 0 {
		t.Fatalf("%d events of the pruned channel remain", events)
	}
	// The survivors' events moved, same seq, into today's partition; the
	// recent channel's history did not move.
	if after := eventSeqs(t, s, "open-old", "disconnected"); !slices.Equal(after, seqsBefore) {
		t.Fatalf("survivors' events %v, want %v", after, seqsBefore)
	}
	var elsewhere int
	_ = s.Pool().QueryRow(ctx, `SELECT count(*) FROM events WHERE part_day <> (now() AT TIME ZONE 'UTC')::date`).Scan(&elsewhere)
	if elsewhere != 0 {
		t.Fatalf("%d events outside today's partition", elsewhere)
	}
	history, err := s.History(ctx, presence.HistoryQuery{ClientID: "cl", Limit: 100})
	if err != nil || len(history) != 5 {
		t.Fatalf("history after prune: %d events, %v; want 5 (open-old 1, disconnected 2, closed-new 2)", len(history), err)
	}
	// Pruning everything closed up to now still keeps the open channels,
	// and never drops today's partition.
	if p, err := s.Prune(ctx, time.Now().Add(48*time.Hour)); err != nil || p.Channels != 1 {
		t.Fatalf("second Prune = %+v, %v; want 1 channel", p, err)
	}
	if st := mustOnline(t, s, "cl"); st.OpenChannels != 2 {
		t.Fatalf("after pruning: %+v", st)
	}
	if after := eventSeqs(t, s, "open-old", "disconnected"); !slices.Equal(after, seqsBefore) {
		t.Fatalf("survivors' events after the second prune %v, want %v", after, seqsBefore)
	}
}

// eventSeqs returns the seqs of the events of channels, ascending.
func eventSeqs(t *testing.T, s *pgstore.Store, channels ...string) []int64 {
	t.Helper()
	rows, _ := s.Pool().Query(ctx, "SELECT seq FROM events WHERE channel_id = ANY($1) ORDER BY seq", channels)
	seqs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	return seqs
}

func TestRejectedEvents(t *testing.T) {
	s := pgtest.NewStore(t)
	if err := s.RejectEvent(ctx, "http", []byte(`{"bad`), "not JSON"); err != nil {
		t.Fatal(err)
	}
	if err := s.RejectEvent(ctx, "rocketmq:GID_x_MQTT", []byte{0xff, 0x00}, "invalid UTF-8"); err != nil {
		t.Fatal(err)
	}
	got, err := s.RejectedEvents(ctx, 10)
	if err != nil || len(got) != 2 {
		t.Fatalf("RejectedEvents = %+v, %v", got, err)
	}
	if got[0].Source != "rocketmq:GID_x_MQTT" || string(got[0].Raw) != "\xff\x00" || got[1].Reason != "not JSON" || got[0].ReceivedAt.IsZero() {
		t.Fatalf("RejectedEvents newest first: %+v", got)
	}
	// Of a large message its start is kept, and the reason says how much.
	if err := s.RejectEvent(ctx, "rocketmq:GID_x_MQTT", make([]byte, 1<<20), "not JSON"); err != nil {
		t.Fatal(err)
	}
	if got, err = s.RejectedEvents(ctx, 1); err != nil || len(got[0].Raw) != 64<<10 ||
		got[0].Reason != "not JSON (the first 65536 of its 1048576 bytes are kept)" {
		t.Fatalf("a 1 MiB message parked as %d bytes, reason %q (%v)", len(got[0].Raw), got[0].Reason, err)
	}
	if n, err := s.PruneRejected(ctx, time.Now().Add(time.Hour)); err != nil || n != 3 {
		t.Fatalf("PruneRejected = %d, %v", n, err)
	}
}

// TestChannelsShowHowTheConnectionWasMade: the connect event's user name,
// keepalive, clean-session flag and TLS details are kept on the channel
// (migration 0009), and the TLS details in the history; a channel whose
// connect the store has not seen shows none.
func TestChannelsShowHowTheConnectionWasMade(t *testing.T) {
	s := pgtest.NewStore(t)
	clean := false
	connect := ev("cl", "tls", presence.EventConnect, 100)
	connect.Username, connect.Keepalive, connect.CleanSession = "dev-user", 60, &clean
	connect.TLSVersion, connect.TLSClientSubject = "TLS 1.3", "CN=dev-1"
	mustApply(t, s, ev("cl", "tls", presence.EventDisconnect, 150), connect, ev("cl", "bare", presence.EventTCPClean, 90))
	chans, err := s.Channels(ctx, "cl", 0)
	if err != nil || len(chans) != 2 {
		t.Fatalf("Channels = %+v, %v", chans, err)
	}
	c := chans[0]
	if c.ChannelID != "tls" || c.Username != "dev-user" || c.Keepalive == nil || *c.Keepalive != 60 || c.CleanSession == nil || *c.CleanSession ||
		c.TLSVersion != "TLS 1.3" || c.TLSSubject != "CN=dev-1" {
		t.Fatalf("the TLS channel: %+v", c)
	}
	if b := chans[1]; b.Username != "" || b.Keepalive != nil || b.CleanSession != nil || b.TLSVersion != "" {
		t.Fatalf("a channel without its connect: %+v", b)
	}
	history, err := s.History(ctx, presence.HistoryQuery{ClientID: "cl", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range history {
		if e.Type == presence.EventConnect && (e.TLSVersion != "TLS 1.3" || e.TLSClientSubject != "CN=dev-1") {
			t.Fatalf("history connect %+v", e)
		}
	}
}
