package rocketmq_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presenced/presenced/consumer/rocketmq"
	"github.com/presenced/presenced/presence"
)

func newForwarder(t *testing.T, e *env, src rocketmq.Source, routing rocketmq.Routing) *rocketmq.Forwarder {
	t.Helper()
	f, err := rocketmq.NewForwarder(src, rocketmq.ForwarderConfig{
		NameServers: []string{e.namesrv},
		Routing:     routing,
		MaxBackoff:  500 * time.Millisecond, // recover fast once the broker is back
		Log:         testLog(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestForwarderSendsEventsWithTopicTagKeysAndBody(t *testing.T) {
	e := newEnv(t)
	ob := openOutbox(t)
	ctx := context.Background()
	group := e.name("GID_fwd")
	defaultTopic := e.name("presence")
	groupTopic := group + "_MQTT"
	grouped := group + "@@@device-1"
	events := []presence.Event{
		event(grouped, presence.EventConnect, 1),
		event(grouped, presence.EventDisconnect, 1),
		event(grouped, presence.EventTCPClean, 1),
		event("no-group-device", presence.EventConnect, 2), // no "@@@": the default topic
	}
	for _, ev := range events {
		if err := ob.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	node := presence.NodeEvent{Node: "broker-a", Epoch: "e1", Type: presence.NodeStart, Time: 1, Seq: 1}
	if err := ob.AppendNode(ctx, node); err != nil {
		t.Fatal(err)
	}

	fwd := newForwarder(t, e, outboxSource{ob}, rocketmq.Routing{Topic: defaultTopic, PerGroupTopics: true})
	runInBackground(t, fwd.Run)
	waitFor(t, 20*time.Second, "the outbox to drain", func() bool { return ob.Stats().BacklogRecords == 0 })
	if got := fwd.Stats.Forwarded.Load(); got != 5 {
		t.Fatalf("Forwarded = %d, want 5", got)
	}

	want := map[collected]bool{}
	for i, ev := range events {
		body, _ := json.Marshal(ev)
		topic := groupTopic
		if i == 3 {
			topic = defaultTopic
		}
		want[collected{Topic: topic, Tag: string(ev.Type), Keys: ev.ChannelID, Body: string(body)}] = true
	}
	nodeBody, _ := json.Marshal(node)
	want[collected{Topic: defaultTopic, Tag: "node", Keys: "broker-a e1", Body: string(nodeBody)}] = true

	col := startCollector(t, e, groupTopic, defaultTopic)
	waitFor(t, 20*time.Second, "the forwarded messages to be consumable", func() bool { return len(col.distinct()) >= len(want) })
	got := col.distinct()
	for m := range want {
		if !got[m] {
			t.Errorf("missing message %+v", m)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d distinct messages, want %d: %+v", len(got), len(want), got)
	}
}

// While RocketMQ is unreachable the outbox keeps the events; when it comes
// back they are all forwarded, and only then acknowledged.
func TestForwarderHoldsEventsWhileRocketMQIsDownAndForwardsThemAfter(t *testing.T) {
	e := newEnv(t)
	e.needFake(t)
	ob := openOutbox(t)
	topic := e.name("presence")
	src := &countingSource{outboxSource: outboxSource{ob}}
	fwd := newForwarder(t, e, src, rocketmq.Routing{Topic: topic})
	runInBackground(t, fwd.Run)

	// One event through, so the route is known before the outage.
	if err := ob.Append(context.Background(), event("c@@@1", presence.EventConnect, 0)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the first event to be forwarded", func() bool { return ob.Stats().BacklogRecords == 0 })

	e.fake.Stop()
	errorsBefore := fwd.Stats.SendErrors.Load()
	const n = 40
	for i := 1; i <= n; i++ {
		if err := ob.Append(context.Background(), event("c@@@1", presence.EventConnect, i)); err != nil {
			t.Fatal(err)
		}
	}
	// The outage lasts until the forwarder has retried its window several
	// times, not for a guessed while: every retry is a chance to wrongly
	// acknowledge, and none may. One retry round fails one send request
	// per group of the window (one group per message queue the window's
	// channels map to, see byQueue), so the rounds are counted as failed
	// sends over the most groups the window can have. With backoff from
	// 100 ms capped at 500 ms this takes about 1.5 s. An acknowledgement
	// ends the wait early, to fail below.
	const rounds = 6
	queues := uint64(e.fake.QueueCount(topic))
	if queues == 0 {
		t.Fatalf("topic %s has no queues after the first send", topic)
	}
	waitFor(t, 20*time.Second, fmt.Sprintf("%d retry rounds while the broker is down", rounds), func() bool {
		if ob.Stats().BacklogRecords != n {
			return true
		}
		window := src.read.Load() - 1 // the first event was read before the outage
		return window > 0 && fwd.Stats.SendErrors.Load()-errorsBefore >= rounds*min(window, queues)
	})
	window, outageErrors := src.read.Load()-1, fwd.Stats.SendErrors.Load()-errorsBefore
	if got := ob.Stats().BacklogRecords; got != n {
		t.Fatalf("backlog %d after %d failed sends of a window of %d entries, want %d: events were acknowledged without being stored",
			got, outageErrors, window, n)
	}
	if got := fwd.Stats.Forwarded.Load(); got != 1 {
		t.Fatalf("Forwarded = %d during the outage, want 1 (the event sent before it)", got)
	}
	if err := e.fake.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the outbox to drain after the broker returned", func() bool { return ob.Stats().BacklogRecords == 0 })

	stored := map[string]bool{}
	for _, m := range e.fake.Messages(topic) {
		stored[m.Keys[0]] = true
	}
	for i := 0; i <= n; i++ {
		if ch := event("c@@@1", presence.EventConnect, i).ChannelID; !stored[ch] {
			t.Errorf("event %d (channel %s) was lost", i, ch)
		}
	}
	t.Logf("send errors during the outage: %d, for a window of %d entries", outageErrors, window)
}

// countingSource is outboxSource counting the entries Read returned (Ack
// and Rewind are still the outbox's own).
type countingSource struct {
	outboxSource
	read atomic.Uint64
}

func (s *countingSource) Read(ctx context.Context, max int) ([]rocketmq.Entry, error) {
	entries, err := s.outboxSource.Read(ctx, max)
	s.read.Add(uint64(len(entries)))
	return entries, err
}

// Shutdown forwards what the outbox holds, then Run returns.
func TestForwarderShutdownDrainsTheOutbox(t *testing.T) {
	e := newEnv(t)
	ob := openOutbox(t)
	fwd := newForwarder(t, e, outboxSource{ob}, rocketmq.Routing{Topic: e.name("presence")})
	bg := runInBackground(t, fwd.Run)
	for i := range 300 {
		if err := ob.Append(context.Background(), event("c@@@1", presence.EventTCPClean, i)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := fwd.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case <-bg.done:
		if bg.err != nil {
			t.Fatalf("Run after Shutdown: %v", bg.err)
		}
	default:
		t.Fatal("Shutdown returned before Run did")
	}
	if got := ob.Stats().BacklogRecords; got != 0 {
		t.Fatalf("backlog %d after a graceful shutdown", got)
	}
}

// BenchmarkForwarder measures events forwarded per second through the
// fake (or a real broker), outbox reads and acknowledgements included.
func BenchmarkForwarder(b *testing.B) {
	for _, mode := range []struct {
		name    string
		noBatch bool
	}{{"batch", false}, {"one-by-one", true}} {
		b.Run(mode.name, func(b *testing.B) {
			e := newEnv(b)
			ob := openOutbox(b)
			fwd, err := rocketmq.NewForwarder(outboxSource{ob}, rocketmq.ForwarderConfig{
				NameServers: []string{e.namesrv},
				Routing:     rocketmq.Routing{Topic: e.name("bench")},
				NoBatch:     mode.noBatch,
				Log:         testLog(),
			})
			if err != nil {
				b.Fatal(err)
			}
			// Fill the outbox first, with concurrent appenders so group
			// commit keeps it quick; then time the forwarding alone.
			var wg sync.WaitGroup
			for w := range 64 {
				wg.Go(func() {
					for i := w; i < b.N; i += 64 {
						if err := ob.Append(context.Background(), event("GID_b@@@d", presence.EventConnect, i)); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ResetTimer()
			start := time.Now()
			runInBackground(b, fwd.Run)
			waitFor(b, 5*time.Minute, "the outbox to drain", func() bool { return ob.Stats().BacklogRecords == 0 })
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}

// All events of a channel go to one message queue, in their order, even
// though the forwarder sends batches (the client picks one queue per batch
// request): the consumer then usually finds them in one batch.
// [Forwarder.forward splits each window by queue]
func TestForwarderKeepsEachChannelInOneQueue(t *testing.T) {
	e := newEnv(t)
	e.needFake(t)
	ob := openOutbox(t)
	ctx := context.Background()
	topic := e.name("presence")
	const channels = 300
	types := []presence.EventType{presence.EventConnect, presence.EventDisconnect, presence.EventTCPClean}
	for n := range channels {
		for _, typ := range types {
			if err := ob.Append(ctx, event("device", typ, n)); err != nil {
				t.Fatal(err)
			}
		}
	}
	fwd := newForwarder(t, e, outboxSource{ob}, rocketmq.Routing{Topic: topic})
	runInBackground(t, fwd.Run)
	waitFor(t, 20*time.Second, "the outbox to drain", func() bool { return ob.Stats().BacklogRecords == 0 })

	queues := e.fake.QueueCount(topic)
	if queues < 2 {
		t.Fatalf("topic has %d queues; the test needs several", queues)
	}
	queueOf := map[string]int{}   // channel -> queue
	seen := map[string][]string{} // channel -> event types in queue order
	used := map[int]bool{}
	total := 0
	for q := range queues {
		for _, m := range e.fake.QueueMessages(topic, q) {
			var ev presence.Event
			if err := json.Unmarshal(m.Body, &ev); err != nil {
				t.Fatal(err)
			}
			total++
			used[q] = true
			if prev, ok := queueOf[ev.ChannelID]; ok && prev != q {
				t.Fatalf("channel %s has events in queues %d and %d", ev.ChannelID, prev, q)
			}
			queueOf[ev.ChannelID] = q
			seen[ev.ChannelID] = append(seen[ev.ChannelID], string(ev.Type))
		}
	}
	if total != channels*len(types) {
		t.Fatalf("%d messages stored, want %d", total, channels*len(types))
	}
	if len(used) < 2 {
		t.Fatalf("every channel went to one queue (%v); want them spread", used)
	}
	for ch, got := range seen {
		if len(got) != 3 || got[0] != "connect" || got[1] != "disconnect" || got[2] != "tcpclean" {
			t.Fatalf("channel %s: events %v in its queue, want connect, disconnect, tcpclean", ch, got)
		}
	}
}
