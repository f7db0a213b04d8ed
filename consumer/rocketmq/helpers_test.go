package rocketmq_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/presenced/presenced/consumer/outbox"
	"github.com/presenced/presenced/consumer/rocketmq"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/test/rocketmqfake"
)

// PRESENCE_TEST_ROCKETMQ_NAMESRV points the tests at a real name server
// (ip:port or host:port) instead of the fake; tests that need to break the
// broker are skipped then. PRESENCE_TEST_ROCKETMQ_LOG=1 shows the logs.
const namesrvEnv = "PRESENCE_TEST_ROCKETMQ_NAMESRV"

func TestMain(m *testing.M) {
	rocketmq.RouteClientLogs(testLog(), slog.LevelWarn)
	os.Exit(m.Run())
}

func testLog() *slog.Logger {
	if os.Getenv("PRESENCE_TEST_ROCKETMQ_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// env is where a test's RocketMQ is: the fake, or a real one.
type env struct {
	namesrv string
	fake    *rocketmqfake.Fake // nil against a real name server
	id      string             // unique per test, for topic and group names
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvWith(t, rocketmqfake.Options{})
}

// newEnvWith is newEnv with the fake (when there is one) configured as opts.
func newEnvWith(t testing.TB, opts rocketmqfake.Options) *env {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	e := &env{id: hex.EncodeToString(b[:])}
	if addr := os.Getenv(namesrvEnv); addr != "" {
		e.namesrv = addr
		return e
	}
	opts.Logger = testLog()
	e.fake = rocketmqfake.New(opts)
	if err := e.fake.Start(); err != nil {
		t.Fatalf("start rocketmq fake: %v", err)
	}
	t.Cleanup(func() { e.fake.Close() })
	e.namesrv = e.fake.NamesrvAddr()
	return e
}

func (e *env) needFake(t *testing.T) {
	t.Helper()
	if e.fake == nil {
		t.Skipf("needs the RocketMQ fake to break the broker; %s is set", namesrvEnv)
	}
}

func (e *env) name(base string) string { return fmt.Sprintf("%s_%s", base, e.id) }

// outboxSource adapts consumer/outbox to the forwarder's Source, as cmd
// does. Ack and Rewind are the outbox's own.
type outboxSource struct{ *outbox.Outbox }

func (s outboxSource) Read(ctx context.Context, max int) ([]rocketmq.Entry, error) {
	recs, err := s.Outbox.Read(ctx, max)
	entries := make([]rocketmq.Entry, len(recs))
	for i, r := range recs {
		entries[i] = rocketmq.Entry{Seq: r.Seq, Kind: r.Kind.String(), Payload: r.Payload}
	}
	return entries, err
}

func openOutbox(t testing.TB) *outbox.Outbox {
	t.Helper()
	o, err := outbox.Open(t.TempDir(), outbox.Options{Log: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

func event(clientID string, typ presence.EventType, n int) presence.Event {
	return presence.Event{
		ClientID:  clientID,
		ChannelID: fmt.Sprintf("%032x", n),
		Type:      typ,
		Time:      1732240000000 + int64(n),
		ClientIP:  "203.0.113.7:52311",
		Node:      "broker-a",
		Epoch:     "e1",
	}
}

// waitFor polls cond every 20 ms until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// background is a Run method running in its own goroutine.
type background struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when run returned
	err    error
}

// runInBackground runs run(ctx); at cleanup it cancels ctx, waits, and
// fails the test if run returned an error.
func runInBackground(t testing.TB, run func(context.Context) error) *background {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	bg := &background{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(bg.done)
		bg.err = run(ctx)
	}()
	t.Cleanup(func() {
		if err := bg.stop(); err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return bg
}

// stop cancels run's context and returns what it returned.
func (bg *background) stop() error {
	bg.cancel()
	select {
	case <-bg.done:
		return bg.err
	case <-time.After(30 * time.Second):
		return fmt.Errorf("did not return within 30 s of cancel")
	}
}

// collected is one message as a plain consumer of the topic sees it.
type collected struct {
	Topic, Tag, Keys, Body string
}

// collector is a plain push consumer (its own group) recording what
// reaches the topics, to check what the forwarder sent over the wire.
type collector struct {
	mu   sync.Mutex
	msgs []collected
}

func (c *collector) all() []collected {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]collected(nil), c.msgs...)
}

// distinct returns the distinct messages seen (duplicates are allowed on
// the wire).
func (c *collector) distinct() map[collected]bool {
	seen := map[collected]bool{}
	for _, m := range c.all() {
		seen[m] = true
	}
	return seen
}

func startCollector(t *testing.T, e *env, topics ...string) *collector {
	t.Helper()
	addrs, err := rocketmq.ResolveNameServers(context.Background(), []string{e.namesrv})
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	pc, err := consumer.NewPushConsumer(
		consumer.WithNameServer(addrs),
		consumer.WithGroupName(e.name("collector")),
		consumer.WithInstance(e.name("collector")),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
	)
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range topics {
		err := pc.Subscribe(topic, consumer.MessageSelector{Type: consumer.TAG, Expression: "*"},
			func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
				c.mu.Lock()
				defer c.mu.Unlock()
				for _, m := range msgs {
					c.msgs = append(c.msgs, collected{Topic: m.Topic, Tag: m.GetTags(), Keys: m.GetKeys(), Body: string(m.Body)})
				}
				return consumer.ConsumeSuccess, nil
			})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := pc.Start(); err != nil {
		t.Fatalf("start collector: %v", err)
	}
	t.Cleanup(func() { pc.Shutdown() })
	return c
}

// rawProducer sends test messages, valid or not, as any producer would.
type rawProducer struct {
	t *testing.T
	p interface {
		SendSync(context.Context, ...*primitive.Message) (*primitive.SendResult, error)
		Shutdown() error
	}
}

func newRawProducer(t *testing.T, e *env) *rawProducer {
	t.Helper()
	addrs, err := rocketmq.ResolveNameServers(context.Background(), []string{e.namesrv})
	if err != nil {
		t.Fatal(err)
	}
	p, err := producer.NewDefaultProducer(
		producer.WithNameServer(addrs),
		producer.WithGroupName(e.name("rawproducer")),
		producer.WithInstanceName(e.name("rawproducer")),
		producer.WithRetry(2),
	)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Shutdown() })
	return &rawProducer{t: t, p: p}
}

func (r *rawProducer) send(topic, tag string, body []byte) {
	r.t.Helper()
	msg := primitive.NewMessage(topic, body)
	msg.WithTag(tag)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := r.p.SendSync(ctx, msg); err != nil {
		r.t.Fatalf("send test message: %v", err)
	}
}
