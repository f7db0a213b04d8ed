package rocketmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/presenced/presenced/presence"
)

// ApplyFunc stores a batch of valid events idempotently, in one
// transaction. An error makes the whole batch come back later; an error
// whose presence.ErrorCode is EINVALID says the store refuses some event
// for good, and the batch is then applied event by event so that only the
// refused ones are rejected.
type ApplyFunc func(ctx context.Context, events []presence.Event) error

// RejectFunc parks a message that is not a valid event (the lead wires it
// to the rejected-events table): source says where it came from, raw is
// the body as received, reason why it was refused. An error makes the
// batch come back later, so nothing is dropped silently.
type RejectFunc func(ctx context.Context, source string, raw []byte, reason string) error

// SubscriptionTags selects the lifecycle events.
const SubscriptionTags = "connect||disconnect||tcpclean"

// ApplyNodeFunc records a broker node's report (liveness, fencing,
// reconciliation) in the store.
type ApplyNodeFunc func(ctx context.Context, n presence.NodeEvent) error

// ConsumerConfig configures a Consumer.
type ConsumerConfig struct {
	// NameServers are "host:port" addresses; host names are resolved
	// when Run starts.
	NameServers []string
	// Group is the consumer group; every presenced consumer of one store
	// uses the same group, so each event is applied by one of them.
	Group string
	// Topics to subscribe: the one topic, or with per-group topics every
	// "<GroupId>_MQTT" of interest (RocketMQ has no wildcard topics).
	Topics []string
	// InstanceName must be unique per client; the default is unique.
	InstanceName string
	// BatchSize is the most messages applied in one call (default 32; a
	// real broker returns at most 32 per pull unless configured higher).
	BatchSize int
	// MaxReconsumeTimes bounds redeliveries of a failing batch before
	// the broker moves it to the dead-letter topic (default 64: about four
	// days with the broker's delay levels).
	MaxReconsumeTimes int
	// AccessKey and SecretKey authenticate to brokers with ACLs. Never logged.
	AccessKey, SecretKey string
	// DrainTimeout bounds how long Run waits, after its context ended, for
	// batches being applied (default 10 s); then their context is cancelled.
	DrainTimeout time.Duration

	Apply  ApplyFunc
	Reject RejectFunc
	// ApplyNode, when set, also subscribes to node reports (tag "node")
	// and applies them after the lifecycle events of the same batch.
	ApplyNode ApplyNodeFunc
	// ApplyRefused, when set, also subscribes to refused connects (tag
	// "refused") and stores them after the batch's lifecycle events and
	// node reports: they never take part in the online rule.
	ApplyRefused ApplyRefusedFunc
	Log          *slog.Logger
}

// ApplyRefusedFunc stores refused connects (pgstore's RecordRefused). An
// error makes the batch come back later.
type ApplyRefusedFunc func(ctx context.Context, refused []presence.RefusedConnect) error

// ConsumerStats are the consumer's counters, for metrics.
type ConsumerStats struct {
	Batches     atomic.Uint64 // batches handed to the callback
	Applied     atomic.Uint64 // valid events in batches applied successfully
	Rejected    atomic.Uint64 // messages handed to Reject successfully
	Refused     atomic.Uint64 // refused connects stored
	RetryLater  atomic.Uint64 // batches sent back for redelivery
	ApplyErrors atomic.Uint64
}

// Consumer is a clustering-mode push consumer that applies lifecycle events.
type Consumer struct {
	cfg   ConsumerConfig
	log   *slog.Logger
	Stats ConsumerStats

	inflight inflight // consume callbacks running
	pause    *retryPause
}

// inflight counts consume callbacks and, once stopping, turns new ones
// away. (A WaitGroup would not do: the client may start a callback while
// Run waits.)
type inflight struct {
	mu       sync.Mutex
	n        int
	stopping bool
	idle     chan struct{} // closed when n drops to 0 while stopping
}

func (f *inflight) enter() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopping {
		return false
	}
	f.n++
	return true
}

func (f *inflight) leave() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n--
	if f.n == 0 && f.idle != nil {
		close(f.idle)
		f.idle = nil
	}
}

// stop turns new callbacks away and returns a channel closed once none runs.
func (f *inflight) stop() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopping = true
	idle := make(chan struct{})
	if f.n == 0 {
		close(idle)
	} else {
		f.idle = idle
	}
	return idle
}

// NewConsumer checks cfg and returns a Consumer. Call Run.
func NewConsumer(cfg ConsumerConfig) (*Consumer, error) {
	if cfg.Apply == nil || cfg.Reject == nil {
		return nil, errors.New("new consumer: Apply and Reject are required")
	}
	if len(cfg.NameServers) == 0 {
		return nil, errors.New("new consumer: no name server address")
	}
	if err := checkName("consumer group", cfg.Group); err != nil {
		return nil, fmt.Errorf("new consumer: %w", err)
	}
	if len(cfg.Topics) == 0 {
		return nil, errors.New("new consumer: no topic to subscribe")
	}
	for _, topic := range cfg.Topics {
		if err := checkName("topic", topic); err != nil {
			return nil, fmt.Errorf("new consumer: %w", err)
		}
	}
	if cfg.InstanceName == "" {
		cfg.InstanceName = uniqueInstanceName("consumer")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 32
	}
	if cfg.MaxReconsumeTimes <= 0 {
		cfg.MaxReconsumeTimes = 64
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Consumer{cfg: cfg, log: cfg.Log.With("component", "rocketmq-consumer", "group", cfg.Group), pause: newRetryPause()}, nil
}

// pushConsumer is the part of the client's push consumer Run uses.
type pushConsumer interface {
	Start() error
	Shutdown() error
	Subscribe(topic string, selector consumer.MessageSelector, f func(context.Context, ...*primitive.MessageExt) (consumer.ConsumeResult, error)) error
}

// Run consumes until ctx ends, then waits up to DrainTimeout for batches
// being applied, shuts the client down (committing the offsets of what was
// applied), and returns nil. Starting is retried while a topic has no route
// yet; a name server address that does not resolve is an error.
func (c *Consumer) Run(ctx context.Context) error {
	addrs, err := ResolveNameServers(ctx, c.cfg.NameServers)
	if err != nil {
		return fmt.Errorf("rocketmq consumer: %w", err)
	}
	// Batches being applied finish on their own context, so a shutdown
	// does not abort a transaction that is about to commit.
	applyCtx, cancelApply := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelApply()

	pc, err := c.start(ctx, applyCtx, addrs)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	<-ctx.Done()
	c.pause.stop()
	// Let batches being applied finish first, so that the offsets the
	// client commits on Shutdown include them; batches dispatched
	// meanwhile are turned away and come back through the retry topic.
	idle := c.inflight.stop()
	select {
	case <-idle:
	case <-time.After(c.cfg.DrainTimeout):
		c.log.Warn("rocketmq consumer: batches still applying after the drain timeout; cancelling them (they will be redelivered)")
		cancelApply()
		<-idle
	}
	if err := pc.Shutdown(); err != nil {
		c.log.Warn("rocketmq consumer shutdown", "err", err)
	}
	return nil
}

// start creates, subscribes and starts the push consumer.
func (c *Consumer) start(ctx, applyCtx context.Context, addrs []string) (pushConsumer, error) {
	pc, err := startRetrying(ctx, c.log, func() (pushConsumer, error) {
		pc, err := c.newPushConsumer(addrs)
		if err != nil {
			return nil, err
		}
		for _, topic := range c.cfg.Topics {
			sel := consumer.MessageSelector{Type: consumer.TAG, Expression: c.tags()}
			if err := pc.Subscribe(topic, sel, c.callback(applyCtx)); err != nil {
				pc.Shutdown()
				return nil, fmt.Errorf("rocketmq consumer: subscribe %s: %w", topic, err)
			}
		}
		return pc, nil
	})
	if err == nil {
		c.log.Info("consuming events from rocketmq", "topics", c.cfg.Topics, "instance", c.cfg.InstanceName, "nameServers", addrs)
	}
	return pc, err
}

// startRetrying starts the push consumer create returns (created and
// subscribed), retrying with backoff while the client refuses to start
// (typically: a topic has no route yet because nothing was ever sent to
// it). An error of create ends it.
func startRetrying(ctx context.Context, log *slog.Logger, create func() (pushConsumer, error)) (pushConsumer, error) {
	backoff := presence.Backoff{Min: 500 * time.Millisecond, Max: 10 * time.Second}
	for {
		pc, err := create()
		if err != nil {
			return nil, err
		}
		err = pc.Start()
		if err == nil {
			return pc, nil
		}
		// A failed Start has shut the client down already.
		if n := backoff.Failures(); n == 0 || n%10 == 9 {
			log.Warn("rocketmq consumer cannot start; retrying", "err", err, "attempt", n+1)
		}
		if err := backoff.Wait(ctx); err != nil {
			return nil, err
		}
	}
}

// pullThresholdForQueue is how many messages of one queue the client holds
// (pulled, not yet acknowledged) before it pauses pulling that queue.
const pullThresholdForQueue = 4096

// pullThresholdMiBForQueue is how many MiB of one queue's messages the
// client holds before it pauses pulling it: 4,096 lifecycle events are
// about 1.6 MB, so only messages far larger than events reach it.
const pullThresholdMiBForQueue = 16

func (c *Consumer) newPushConsumer(addrs []string) (pushConsumer, error) {
	opts := []consumer.Option{
		consumer.WithNameServer(addrs),
		consumer.WithGroupName(c.cfg.Group),
		consumer.WithInstance(c.cfg.InstanceName),
		consumer.WithConsumerModel(consumer.Clustering),
		// A new group reads what the topic still holds instead of only
		// what arrives after it first starts: events sent before the
		// first consumer ran must not be lost, and duplicates are free.
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
		consumer.WithConsumeMessageBatchMaxSize(c.cfg.BatchSize),
		consumer.WithPullBatchSize(int32(max(c.cfg.BatchSize, 32))),
		// The client stops pulling a queue for 50 ms whenever 1,024
		// messages of it wait or are being applied, or their offsets span
		// more than 1,000. Group commit applies thousands at once, so
		// those defaults idled the store between transactions while
		// draining a backlog. At ~400 bytes a lifecycle event, 4,096 per
		// queue is about 1.6 MB of memory per queue held.
		consumer.WithPullThresholdForQueue(pullThresholdForQueue),
		// And in bytes: the client's default is 512 MiB per queue, so a
		// topic fed large bogus messages (parked, at 64 KiB each, in
		// rejected_events) could fill memory with them first.
		consumer.WithPullThresholdSizeForQueue(pullThresholdMiBForQueue),
		consumer.WithConsumeConcurrentlyMaxSpan(4 * pullThresholdForQueue),
		consumer.WithMaxReconsumeTimes(int32(c.cfg.MaxReconsumeTimes)),
	}
	if c.cfg.AccessKey != "" {
		opts = append(opts, consumer.WithCredentials(primitive.Credentials{AccessKey: c.cfg.AccessKey, SecretKey: c.cfg.SecretKey}))
	}
	pc, err := consumer.NewPushConsumer(opts...)
	if err != nil {
		return nil, fmt.Errorf("rocketmq consumer: %w", err)
	}
	return pc, nil
}

// callback returns the consume function: decode each message, apply the
// valid events in one call, reject the poison ones, and ask for
// redelivery of the whole batch on any failure.
func (c *Consumer) callback(ctx context.Context) func(context.Context, ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
	return func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		if !c.inflight.enter() {
			return consumer.ConsumeRetryLater, nil // shutting down
		}
		defer c.inflight.leave()
		c.Stats.Batches.Add(1)
		if err := c.consume(ctx, msgs); err != nil {
			c.Stats.RetryLater.Add(1)
			pause := c.pause.next()
			c.log.Warn("batch will be redelivered", "err", err, "messages", len(msgs), "after", pause)
			c.pause.wait(pause)
			// The error is logged here; returning it would make the
			// client log the whole batch, bodies included.
			return consumer.ConsumeRetryLater, nil
		}
		c.pause.success()
		return consumer.ConsumeSuccess, nil
	}
}

// poison is a message that is not a valid event.
type poison struct {
	msg    *primitive.MessageExt
	reason string
}

func (c *Consumer) consume(ctx context.Context, msgs []*primitive.MessageExt) error {
	events := make([]presence.Event, 0, len(msgs))
	origins := make([]*primitive.MessageExt, 0, len(msgs))
	var rejects []poison
	var nodes []presence.NodeEvent
	var refusedConnects []presence.RefusedConnect
	for _, m := range msgs {
		if m.GetTags() == TagRefused && c.cfg.ApplyRefused != nil {
			rc, err := DecodeRefused(m.Body)
			if err != nil {
				rejects = append(rejects, poison{m, err.Error()})
				continue
			}
			refusedConnects = append(refusedConnects, rc)
			continue
		}
		if m.GetTags() == TagNode && c.cfg.ApplyNode != nil {
			n, err := presence.DecodeNodeEvent(m.Body)
			if err != nil {
				rejects = append(rejects, poison{m, err.Error()})
				continue
			}
			nodes = append(nodes, n)
			continue
		}
		ev, err := presence.DecodeEvent(m.Body)
		if err != nil {
			rejects = append(rejects, poison{m, err.Error()})
			continue
		}
		events = append(events, ev)
		origins = append(origins, m)
	}
	// Apply before Reject: if Reject then fails, the redelivered events
	// are absorbed by the idempotent store, while the rejected-events
	// table may not be idempotent.
	if len(events) > 0 {
		refused, err := c.apply(ctx, events, origins)
		if err != nil {
			return err
		}
		rejects = append(rejects, refused...)
	}
	// Node reports after the events of the batch: a channel-set report
	// must not be applied before connects the broker numbered earlier.
	for _, n := range nodes {
		if err := c.cfg.ApplyNode(ctx, n); err != nil {
			return fmt.Errorf("apply node report %s/%s: %w", n.Node, n.Type, err)
		}
	}
	// Refused connects last: the store keeps them without a natural key,
	// so the fewer steps that can fail after them, the fewer duplicates a
	// redelivery makes.
	if len(refusedConnects) > 0 {
		if err := c.cfg.ApplyRefused(ctx, refusedConnects); err != nil {
			return fmt.Errorf("store %d refused connects: %w", len(refusedConnects), err)
		}
		c.Stats.Refused.Add(uint64(len(refusedConnects)))
	}
	for _, p := range rejects {
		if err := c.cfg.Reject(ctx, source(p.msg), p.msg.Body, p.reason); err != nil {
			return fmt.Errorf("reject message %s: %w", p.msg.MsgId, err)
		}
		c.Stats.Rejected.Add(1)
		c.log.Warn("rejected a message that is not a valid event", "source", source(p.msg), "reason", p.reason)
	}
	return nil
}

// apply applies events in one call; when the store refuses the batch as
// invalid, it applies them one by one and returns those refused, to be
// rejected like poison.
func (c *Consumer) apply(ctx context.Context, events []presence.Event, origins []*primitive.MessageExt) ([]poison, error) {
	err := c.cfg.Apply(ctx, events)
	if err == nil {
		c.Stats.Applied.Add(uint64(len(events)))
		return nil, nil
	}
	c.Stats.ApplyErrors.Add(1)
	if presence.ErrorCode(err) != presence.EINVALID {
		return nil, fmt.Errorf("apply %d events: %w", len(events), err)
	}
	if len(events) == 1 {
		return []poison{{origins[0], "store refused the event: " + presence.ErrorMessage(err)}}, nil
	}
	var refused []poison
	for i, ev := range events {
		err := c.cfg.Apply(ctx, []presence.Event{ev})
		switch {
		case err == nil:
			c.Stats.Applied.Add(1)
		case presence.ErrorCode(err) == presence.EINVALID:
			refused = append(refused, poison{origins[i], "store refused the event: " + presence.ErrorMessage(err)})
		default:
			c.Stats.ApplyErrors.Add(1)
			return nil, fmt.Errorf("apply event %s: %w", ev, err)
		}
	}
	return refused, nil
}

// source names where a message came from, for the rejected-events table.
func source(m *primitive.MessageExt) string {
	queue := -1
	if m.Queue != nil {
		queue = m.Queue.QueueId
	}
	return fmt.Sprintf("rocketmq topic=%s queue=%d offset=%d msgId=%s", m.Topic, queue, m.QueueOffset, m.MsgId)
}

// tags is the subscription expression: lifecycle events, and node reports
// and refused connects when they are applied.
func (c *Consumer) tags() string {
	tags := SubscriptionTags
	if c.cfg.ApplyNode != nil {
		tags += "||" + TagNode
	}
	if c.cfg.ApplyRefused != nil {
		tags += "||" + TagRefused
	}
	return tags
}
