package rocketmqfake_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"

	"github.com/presenced/presenced/test/rocketmqfake"
)

// quietLogger silences rocketmq-client-go's logrus output (it logs every
// rebalance at info and every connection loss at error). Set
// ROCKETMQFAKE_CLIENT_LOG=debug|info|warn|error to see it.
type quietLogger struct{}

func (quietLogger) Debug(string, map[string]interface{})   {}
func (quietLogger) Info(string, map[string]interface{})    {}
func (quietLogger) Warning(string, map[string]interface{}) {}
func (quietLogger) Error(string, map[string]interface{})   {}
func (quietLogger) Fatal(string, map[string]interface{})   {}
func (quietLogger) Level(string)                           {}
func (quietLogger) OutputPath(string) error                { return nil }

func TestMain(m *testing.M) {
	if lvl := os.Getenv("ROCKETMQFAKE_CLIENT_LOG"); lvl != "" {
		rlog.SetLogLevel(lvl)
	} else {
		rlog.SetLogger(quietLogger{})
	}
	os.Exit(m.Run())
}

// The tag expression presenced subscribes with.
const presenceTags = "connect||disconnect||tcpclean"

var instanceSeq atomic.Int64

// instance returns a process-unique client instance name. Two clients with
// the same instance name in one process share one rmqClient (and its
// connections, heartbeats and group registrations) — always set one.
func instance(t *testing.T, role string) string {
	return fmt.Sprintf("%s-%s-%d", t.Name(), role, instanceSeq.Add(1))
}

func startFake(t *testing.T, opts rocketmqfake.Options) *rocketmqfake.Fake {
	t.Helper()
	if opts.Logger == nil && os.Getenv("ROCKETMQFAKE_LOG") != "" {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	f := rocketmqfake.New(opts)
	if err := f.Start(); err != nil {
		t.Fatalf("start fake: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func newProducer(t *testing.T, f *rocketmqfake.Fake, opts ...producer.Option) rocketmqProducer {
	t.Helper()
	base := []producer.Option{
		producer.WithNameServer(primitive.NamesrvAddr{f.NamesrvAddr()}),
		producer.WithGroupName("presenced-producer"),
		producer.WithInstanceName(instance(t, "producer")),
		producer.WithRetry(2),
	}
	p, err := producer.NewDefaultProducer(append(base, opts...)...)
	if err != nil {
		t.Fatalf("new producer: %v", err)
	}
	if err := p.Start(); err != nil {
		t.Fatalf("start producer: %v", err)
	}
	t.Cleanup(func() { _ = p.Shutdown() })
	return p
}

type rocketmqProducer interface {
	SendSync(ctx context.Context, msgs ...*primitive.Message) (*primitive.SendResult, error)
	Shutdown() error
}

// received collects what a consumer callback saw.
type received struct {
	done atomic.Int64 // messages whose callback has returned
	mu   sync.Mutex
	msgs []*primitive.MessageExt
	by   map[string]int // body → deliveries
	ch   chan struct{}  // signalled on every delivery
}

func newReceived() *received {
	return &received{by: map[string]int{}, ch: make(chan struct{}, 1)}
}

func (r *received) add(msgs ...*primitive.MessageExt) {
	r.mu.Lock()
	for _, m := range msgs {
		r.msgs = append(r.msgs, m)
		r.by[string(m.Body)]++
	}
	r.mu.Unlock()
	select {
	case r.ch <- struct{}{}:
	default:
	}
}

func (r *received) snapshot() ([]*primitive.MessageExt, map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	by := make(map[string]int, len(r.by))
	for k, v := range r.by {
		by[k] = v
	}
	return append([]*primitive.MessageExt(nil), r.msgs...), by
}

// distinct returns how many distinct bodies arrived.
func (r *received) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.by)
}

// waitDistinct waits until n distinct bodies arrived.
func (r *received) waitDistinct(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := rocketmqfake.WaitFor(ctx, func() bool { return r.distinct() >= n }); err != nil {
		_, by := r.snapshot()
		t.Fatalf("got %d distinct messages, want %d: %v", len(by), n, by)
	}
}

// settle waits until n messages' callbacks have returned, then a little
// longer: the client records a consumed offset only after the callback
// returns, and Shutdown persists whatever it has at that moment (it does not
// wait for callbacks in flight).
func (r *received) settle(t *testing.T, n int) {
	t.Helper()
	ctx, cancel := contextTimeout(10 * time.Second)
	defer cancel()
	if err := rocketmqfake.WaitFor(ctx, func() bool { return r.done.Load() >= int64(n) }); err != nil {
		t.Fatalf("%d callbacks returned, want %d", r.done.Load(), n)
	}
	time.Sleep(200 * time.Millisecond)
}

type pushConsumer interface {
	Start() error
	Shutdown() error
	Subscribe(topic string, selector consumer.MessageSelector,
		f func(context.Context, ...*primitive.MessageExt) (consumer.ConsumeResult, error)) error
}

// consumerOpts are the options the tests use for a fast push consumer.
func consumerOpts(f *rocketmqfake.Fake, group, inst string) []consumer.Option {
	return []consumer.Option{
		consumer.WithNameServer(primitive.NamesrvAddr{f.NamesrvAddr()}),
		consumer.WithGroupName(group),
		consumer.WithInstance(inst),
		consumer.WithConsumerModel(consumer.Clustering),
		consumer.WithConsumeMessageBatchMaxSize(8),
	}
}

// startConsumer starts a clustering push consumer subscribed to topic with
// the presence tag expression. handler decides the result per batch; nil
// means ConsumeSuccess. The consumer is shut down at cleanup unless the
// test did it.
func startConsumer(t *testing.T, f *rocketmqfake.Fake, group, topic, expr string,
	handler func([]*primitive.MessageExt) consumer.ConsumeResult, extra ...consumer.Option) (pushConsumer, *received) {
	t.Helper()
	rec := newReceived()
	c, err := consumer.NewPushConsumer(append(consumerOpts(f, group, instance(t, "consumer")), extra...)...)
	if err != nil {
		t.Fatalf("new consumer: %v", err)
	}
	err = c.Subscribe(topic, consumer.MessageSelector{Type: consumer.TAG, Expression: expr},
		func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			rec.add(msgs...)
			defer rec.done.Add(int64(len(msgs)))
			if handler != nil {
				return handler(msgs), nil
			}
			return consumer.ConsumeSuccess, nil
		})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if err := c.Start(); err != nil {
		t.Fatalf("start consumer: %v", err)
	}
	var once sync.Once
	shutdown := func() error {
		var err error
		once.Do(func() { err = c.Shutdown() })
		return err
	}
	t.Cleanup(func() { _ = shutdown() })
	return &onceConsumer{pushConsumer: c, shutdown: shutdown}, rec
}

type onceConsumer struct {
	pushConsumer
	shutdown func() error
}

func (c *onceConsumer) Shutdown() error { return c.shutdown() }

func newMsg(topic, tag, key, body string) *primitive.Message {
	m := primitive.NewMessage(topic, []byte(body))
	if tag != "" {
		m.WithTag(tag)
	}
	if key != "" {
		m.WithKeys([]string{key})
	}
	return m
}

func sendSync(t *testing.T, p rocketmqProducer, msgs ...*primitive.Message) *primitive.SendResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := p.SendSync(ctx, msgs...)
	if err != nil {
		t.Fatalf("SendSync: %v", err)
	}
	if res.Status != primitive.SendOK {
		t.Fatalf("SendSync status %v", res.Status)
	}
	return res
}

func contextTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// waitOffsets waits until group's committed offsets on topic sum to total.
func waitOffsets(f *rocketmqfake.Fake, group, topic string, total int64, d time.Duration) error {
	ctx, cancel := contextTimeout(d)
	defer cancel()
	return rocketmqfake.WaitFor(ctx, func() bool {
		var sum int64
		for _, off := range f.Offsets(group, topic) {
			sum += off
		}
		return sum == total
	})
}
