package rocketmq_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presenced/presenced/consumer/rocketmq"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/test/rocketmqfake"
)

// store records what a Consumer applied and rejected, like the lead's
// Postgres store would (idempotent on the event key).
type store struct {
	mu       sync.Mutex
	applied  map[presence.Key]presence.Event
	batches  []int
	rejected []rejection
	failNext atomic.Int32 // Apply calls still to fail with EUNAVAILABLE
	downTill atomic.Int64 // Apply fails with EUNAVAILABLE until this time (unix ns)
}

type rejection struct{ source, raw, reason string }

func newStore() *store { return &store{applied: map[presence.Key]presence.Event{}} }

func (s *store) apply(_ context.Context, events []presence.Event) error {
	if s.failNext.Add(-1) >= 0 || time.Now().UnixNano() < s.downTill.Load() {
		return presence.Errorf(presence.EUNAVAILABLE, "database unavailable (test)")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches = append(s.batches, len(events))
	for _, ev := range events {
		s.applied[ev.Key()] = ev
	}
	return nil
}

func (s *store) reject(_ context.Context, source string, raw []byte, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejected = append(s.rejected, rejection{source, string(raw), reason})
	return nil
}

func (s *store) counts() (applied, rejected int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.applied), len(s.rejected)
}

func startConsumer(t *testing.T, e *env, st *store, topics ...string) *rocketmq.Consumer {
	t.Helper()
	return startConsumerWith(t, e, st, rocketmq.ConsumerConfig{Topics: topics})
}

// startConsumerWith starts a consumer of st configured as cfg, with the
// test's name server, group, store and (unless cfg has one) log filled in.
func startConsumerWith(t *testing.T, e *env, st *store, cfg rocketmq.ConsumerConfig) *rocketmq.Consumer {
	t.Helper()
	cfg.NameServers = []string{e.namesrv}
	if cfg.Group == "" {
		cfg.Group = e.name("presenced")
	}
	cfg.Apply, cfg.Reject = st.apply, st.reject
	if cfg.Log == nil {
		cfg.Log = testLog()
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 32
	}
	c, err := rocketmq.NewConsumer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runInBackground(t, c.Run)
	return c
}

// recordHandler is a slog.Handler handing every record to a function, for
// tests that wait on what a component logs.
type recordHandler func(slog.Record)

func (h recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error {
	h(r)
	return nil
}
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordHandler) WithGroup(string) slog.Handler      { return h }

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConsumerAppliesBatchesFromEveryTopic(t *testing.T) {
	e := newEnv(t)
	topicA, topicB := e.name("GID_a")+"_MQTT", e.name("GID_b")+"_MQTT"
	p := newRawProducer(t, e)
	// Topics exist before the consumer starts, as on a real broker.
	const perTopic = 100
	for i := range perTopic {
		p.send(topicA, "connect", mustJSON(t, event("GID_a@@@d", presence.EventConnect, i)))
		p.send(topicB, "tcpclean", mustJSON(t, event("GID_b@@@d", presence.EventTCPClean, i)))
	}
	st := newStore()
	c := startConsumer(t, e, st, topicA, topicB)
	waitFor(t, 30*time.Second, "every event to be applied", func() bool {
		applied, _ := st.counts()
		return applied == 2*perTopic
	})
	st.mu.Lock()
	biggest := 0
	for _, n := range st.batches {
		biggest = max(biggest, n)
	}
	st.mu.Unlock()
	if biggest < 2 {
		t.Errorf("largest batch applied held %d events; batching does not work", biggest)
	}
	t.Logf("%d batches, largest %d; stats: applied %d, batches %d", len(st.batches), biggest, c.Stats.Applied.Load(), c.Stats.Batches.Load())
}

// Alibaba Cloud's MQTT status notifications carry exactly five keys.
func TestConsumerAcceptsAlibabaFiveKeyEvents(t *testing.T) {
	e := newEnv(t)
	topic := e.name("GID_ali") + "_MQTT"
	p := newRawProducer(t, e)
	bodies := []string{
		`{"clientId":"GID_ali@@@0001","time":1570848743431,"eventType":"connect","channelId":"2b9b1281046046faafe5e0b458e4a001","clientIp":"192.168.0.1:13361"}`,
		`{"clientId":"GID_ali@@@0001","time":1570848743500,"eventType":"disconnect","channelId":"2b9b1281046046faafe5e0b458e4a001","clientIp":"192.168.0.1:13361"}`,
		`{"clientId":"GID_ali@@@0001","time":1570848743501,"eventType":"tcpclean","channelId":"2b9b1281046046faafe5e0b458e4a001","clientIp":"192.168.0.1:13361"}`,
	}
	for _, body := range bodies {
		var probe struct{ EventType string }
		_ = json.Unmarshal([]byte(body), &probe)
		p.send(topic, probe.EventType, []byte(body))
	}
	st := newStore()
	startConsumer(t, e, st, topic)
	waitFor(t, 30*time.Second, "the three events", func() bool { a, _ := st.counts(); return a == 3 })
	st.mu.Lock()
	defer st.mu.Unlock()
	ev := st.applied[presence.Key{ChannelID: "2b9b1281046046faafe5e0b458e4a001", Type: presence.EventTCPClean}]
	if ev.ClientID != "GID_ali@@@0001" || ev.Time != 1570848743501 || ev.ClientIP != "192.168.0.1:13361" {
		t.Fatalf("tcpclean applied as %+v", ev)
	}
	if len(st.rejected) != 0 {
		t.Fatalf("rejected: %+v", st.rejected)
	}
}

// A message that is not a valid event goes to Reject, is acknowledged, and
// does not hold up the valid ones.
func TestConsumerRejectsPoisonMessagesAndAppliesTheRest(t *testing.T) {
	// Short long polls: a caught-up queue's pull comes back at once and the
	// next one commits the consumer's offset (see below).
	e := newEnvWith(t, rocketmqfake.Options{MaxLongPoll: 100 * time.Millisecond})
	topic := e.name("presence")
	p := newRawProducer(t, e)
	poison := map[string]string{
		"not json":      `this is not json`,
		"missing field": `{"clientId":"c1","eventType":"connect","time":1}`,
		"invalid type":  `{"clientId":"c1","channelId":"ch1","eventType":"exploded","time":1}`,
	}
	p.send(topic, "connect", mustJSON(t, event("c@@@1", presence.EventConnect, 1)))
	for _, body := range poison {
		p.send(topic, "connect", []byte(body))
	}
	p.send(topic, "tcpclean", mustJSON(t, event("c@@@1", presence.EventTCPClean, 1)))
	// A tag the consumer does not subscribe to is filtered out by RocketMQ.
	p.send(topic, "node", []byte(`{"node":"n"}`))

	st := newStore()
	c := startConsumer(t, e, st, topic)
	waitFor(t, 30*time.Second, "valid events applied and poison rejected", func() bool {
		a, r := st.counts()
		return a == 2 && r >= len(poison)
	})
	if e.fake != nil {
		// Anything applied or rejected beyond this would be a bug. Rather
		// than give it a moment to show, wait until nothing more can come:
		// the group has committed every offset of the topic (the node
		// message included, which the tag filter skips) and sent no batch
		// back for redelivery. An offset moves past a message only once
		// its batch's callback returned, so everything the consumer will
		// do with these messages is done. (Each pull carries the offset
		// to commit; a skipped message at the end of a queue is passed
		// when a pull finds nothing more, at once with short long polls.)
		group := e.name("presenced")
		waitFor(t, 30*time.Second, "the group to commit every offset of the topic", func() bool { return e.fake.Lag(group, topic) == 0 })
		if n := c.Stats.RetryLater.Load(); n != 0 {
			t.Fatalf("%d batches were sent back for redelivery", n)
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	seen := map[string]bool{}
	isPoison := map[string]bool{}
	for _, body := range poison {
		isPoison[body] = true
	}
	for _, r := range st.rejected {
		seen[r.raw] = true
		if !strings.Contains(r.source, "topic="+topic) || r.reason == "" {
			t.Errorf("rejection without a source or reason: %+v", r)
		}
		if !isPoison[r.raw] { // the node message, had the tag filter let it through
			t.Errorf("rejected a message that is not one of the poison ones: %+v", r)
		}
	}
	for name, body := range poison {
		if !seen[body] {
			t.Errorf("poison message %q was not rejected", name)
		}
	}
	if len(st.applied) != 2 {
		t.Errorf("applied %d events, want 2", len(st.applied))
	}
}

// sendConnects sends n connect events of distinct channels to the test's
// "presence" topic and returns the topic.
func sendConnects(t *testing.T, e *env, n int) string {
	t.Helper()
	topic := e.name("presence")
	p := newRawProducer(t, e)
	for i := range n {
		p.send(topic, "connect", mustJSON(t, event("c@@@1", presence.EventConnect, i)))
	}
	return topic
}

// waitApplied waits up to a minute until st holds n events.
func waitApplied(t *testing.T, st *store, n int, what string) {
	t.Helper()
	waitFor(t, 60*time.Second, what, func() bool {
		a, _ := st.counts()
		return a == n
	})
}

// When Apply fails (the store is down) the batch is redelivered later and
// then applied; nothing is lost.
func TestConsumerRedeliversWhenApplyFails(t *testing.T) {
	e := newEnv(t)
	const n = 10
	topic := sendConnects(t, e, n)
	st := newStore()
	st.failNext.Store(3)
	c := startConsumer(t, e, st, topic)
	waitApplied(t, st, n, "every event applied after the failures")
	if got := c.Stats.RetryLater.Load(); got == 0 {
		t.Fatal("no batch was sent back for redelivery")
	}
	if e.fake != nil {
		if dlq := e.fake.DLQ(e.name("presenced")); len(dlq) != 0 {
			t.Fatalf("%d messages went to the dead-letter queue", len(dlq))
		}
	}
	t.Logf("batches sent back: %d", c.Stats.RetryLater.Load())
}

// A database outage does not use up the messages' redeliveries: failed
// batches come back only after a growing pause, so a few seconds down
// never sends an event to the dead-letter queue — even from a broker that
// redelivers at once (the double without delay levels), where six
// redeliveries used to take milliseconds.
func TestConsumerOutageDoesNotExhaustRedeliveries(t *testing.T) {
	e := newEnv(t)
	e.needFake(t)
	const n = 20
	topic := sendConnects(t, e, n)
	st := newStore()
	st.downTill.Store(time.Now().Add(2 * time.Second).UnixNano())
	c := startConsumerWith(t, e, st, rocketmq.ConsumerConfig{Topics: []string{topic}, MaxReconsumeTimes: 6})
	waitApplied(t, st, n, "every event applied after the outage")
	if dlq := e.fake.DLQ(e.name("presenced")); len(dlq) != 0 {
		t.Fatalf("%d messages went to the dead-letter queue during a 2 s outage", len(dlq))
	}
	if c.Stats.RetryLater.Load() == 0 {
		t.Fatal("no batch was sent back: the outage did not hit consumption")
	}
	t.Logf("batches sent back: %d", c.Stats.RetryLater.Load())
}

// Messages that exhausted their redeliveries are re-driven from the
// dead-letter topic by a consumer of another group subscribed to it, as
// README describes: they keep their tags, and the idempotent store takes
// them as if they came the first time.
func TestConsumerRedrivesTheDeadLetterTopic(t *testing.T) {
	e := newEnv(t)
	e.needFake(t) // a real broker creates %DLQ% topics write-only until an operator opens them
	const n = 20
	topic := sendConnects(t, e, n)
	down := newStore()
	down.downTill.Store(time.Now().Add(time.Hour).UnixNano())
	startConsumerWith(t, e, down, rocketmq.ConsumerConfig{Topics: []string{topic}, MaxReconsumeTimes: 1})
	dlqTopic := "%DLQ%" + e.name("presenced")
	waitFor(t, 60*time.Second, "every message in the dead-letter topic", func() bool { return len(e.fake.DLQ(e.name("presenced"))) == n })

	st := newStore()
	startConsumerWith(t, e, st, rocketmq.ConsumerConfig{Group: e.name("redrive"), Topics: []string{dlqTopic}})
	waitApplied(t, st, n, "every dead-lettered event applied by the re-drive consumer")
	if applied, _ := down.counts(); applied != 0 {
		t.Fatalf("the failing store applied %d events", applied)
	}
}

// A store that refuses one event as invalid does not hold back the batch:
// the refused event is rejected, the others applied.
func TestConsumerIsolatesEventsTheStoreRefuses(t *testing.T) {
	e := newEnv(t)
	topic := e.name("presence")
	p := newRawProducer(t, e)
	for i := range 5 {
		p.send(topic, "connect", mustJSON(t, event(fmt.Sprintf("c@@@%d", i), presence.EventConnect, i)))
	}
	st := newStore()
	refuse := event("c@@@3", presence.EventConnect, 3).Key()
	c, err := rocketmq.NewConsumer(rocketmq.ConsumerConfig{
		NameServers: []string{e.namesrv},
		Group:       e.name("presenced"),
		Topics:      []string{topic},
		Apply: func(ctx context.Context, events []presence.Event) error {
			for _, ev := range events {
				if ev.Key() == refuse {
					return presence.Errorf(presence.EINVALID, "channel belongs to another client (test)")
				}
			}
			return st.apply(ctx, events)
		},
		Reject: st.reject,
		Log:    testLog(),
	})
	if err != nil {
		t.Fatal(err)
	}
	runInBackground(t, c.Run)
	waitFor(t, 30*time.Second, "four applied and one rejected", func() bool {
		a, r := st.counts()
		return a == 4 && r == 1
	})
	st.mu.Lock()
	defer st.mu.Unlock()
	if !strings.Contains(st.rejected[0].reason, "another client") {
		t.Fatalf("rejection reason %q", st.rejected[0].reason)
	}
}

// A consumer started before its topic exists (a real broker creates
// topics only on their first send) keeps trying and consumes once the topic
// appears.
func TestConsumerWaitsForItsTopic(t *testing.T) {
	if os.Getenv(namesrvEnv) != "" {
		t.Skipf("needs the RocketMQ fake to control topic creation; %s is set", namesrvEnv)
	}
	fake := rocketmqfake.New(rocketmqfake.Options{NoAutoCreateTopics: true, Logger: testLog()})
	if err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	e := &env{namesrv: fake.NamesrvAddr(), fake: fake, id: "late"}
	topic := e.name("presence")
	st := newStore()
	// The consumer's log is the observable of a failed start: the test
	// creates the topic only after one, so the retry is what gets tested
	// (not a start that happened to come after the topic).
	startFailed := make(chan struct{})
	var once sync.Once
	log := slog.New(recordHandler(func(r slog.Record) {
		if r.Level == slog.LevelWarn && r.Message == "rocketmq consumer cannot start; retrying" {
			once.Do(func() { close(startFailed) })
		}
	}))
	c := startConsumerWith(t, e, st, rocketmq.ConsumerConfig{Topics: []string{topic}, Log: log})
	select {
	case <-startFailed:
	case <-time.After(30 * time.Second):
		t.Fatal("the consumer did not fail to start on a topic that does not exist")
	}
	if a, _ := st.counts(); a != 0 {
		t.Fatal("applied events from a topic that does not exist")
	}
	fake.CreateTopic(topic, 4)
	newRawProducer(t, e).send(topic, "connect", mustJSON(t, event("c@@@1", presence.EventConnect, 1)))
	waitFor(t, 30*time.Second, "the event on the late topic", func() bool { a, _ := st.counts(); return a == 1 })
	t.Logf("batches: %d", c.Stats.Batches.Load())
}

// Stopping the consumer lets a batch being applied finish (its context is
// not cancelled) before Run returns.
func TestConsumerRunWaitsForTheBatchBeingApplied(t *testing.T) {
	e := newEnv(t)
	topic := e.name("presence")
	newRawProducer(t, e).send(topic, "connect", mustJSON(t, event("c@@@1", presence.EventConnect, 1)))
	started, release := make(chan struct{}), make(chan struct{})
	var applyErr atomic.Value
	var once sync.Once
	c, err := rocketmq.NewConsumer(rocketmq.ConsumerConfig{
		NameServers: []string{e.namesrv},
		Group:       e.name("presenced"),
		Topics:      []string{topic},
		Apply: func(ctx context.Context, events []presence.Event) error {
			once.Do(func() { close(started) })
			<-release
			if err := ctx.Err(); err != nil {
				applyErr.Store(err)
			}
			return nil
		},
		Reject: newStore().reject,
		Log:    testLog(),
	})
	if err != nil {
		t.Fatal(err)
	}
	bg := runInBackground(t, c.Run)
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("no batch was applied")
	}
	stopped := make(chan error, 1)
	go func() { stopped <- bg.stop() }()
	select {
	case <-stopped:
		t.Fatal("Run returned while a batch was being applied")
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after the batch finished")
	}
	if err := applyErr.Load(); err != nil {
		t.Fatalf("the batch's context was cancelled: %v", err)
	}
}
