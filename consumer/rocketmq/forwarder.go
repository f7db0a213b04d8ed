package rocketmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/presenced/presenced/presence"
)

// Source is the durable log a Forwarder drains: consumer/outbox.Outbox,
// adapted by the caller to return Entry values.
type Source interface {
	// Read returns up to max entries after those already returned, oldest
	// first, waiting until at least one exists. It must return entries
	// that are waiting even when ctx is already done, and ctx.Err() only
	// when none are: the forwarder drains with a cancelled context.
	Read(ctx context.Context, max int) ([]Entry, error)
	// Ack acknowledges every entry up to and including seq, durably.
	Ack(seq uint64) error
}

// rewinder is implemented by sources (consumer/outbox.Outbox) that can
// return to the first unacknowledged entry; Run calls it first, so a
// Forwarder restarted in the same process resends what its predecessor
// read but never acknowledged.
type rewinder interface{ Rewind() }

// ForwarderConfig configures a Forwarder.
type ForwarderConfig struct {
	// NameServers are "host:port" addresses; host names are resolved
	// when Run starts.
	NameServers []string
	Routing     Routing
	// ProducerGroup names the producer group (default "presenced_broker").
	ProducerGroup string
	// InstanceName must be unique per client in the process; the default
	// is unique.
	InstanceName string
	// Window is the most entries read and sent together (default 256);
	// unless NoBatch, the window's entries of one topic go in one request
	// per message queue (the queue of their channel), sent concurrently.
	// Acknowledgements cover several windows: they are written at most
	// every 100 ms while a backlog drains, and whenever it is drained.
	Window int
	// NoBatch sends one message per request, the window's messages
	// concurrently, for brokers that refuse batch messages.
	NoBatch bool
	// SendTimeout bounds one send request (default 3 s).
	SendTimeout time.Duration
	// MaxBackoff caps the wait between retries of a failed send, which
	// doubles from 100 ms (default 5 s).
	MaxBackoff time.Duration
	// AccessKey and SecretKey authenticate to brokers with ACLs (Alibaba
	// Cloud). Never logged.
	AccessKey, SecretKey string
	Log                  *slog.Logger
}

// ForwarderStats are the forwarder's counters, for metrics.
type ForwarderStats struct {
	Forwarded  atomic.Uint64 // entries stored by RocketMQ
	Requests   atomic.Uint64 // successful send requests
	SendErrors atomic.Uint64 // failed send requests (each retried)
	Skipped    atomic.Uint64 // entries that could not be turned into messages
	// Backoff is true while sends are failing.
	Backoff atomic.Bool
}

// Forwarder moves events from the durable outbox to RocketMQ, in order,
// acknowledging each window only after RocketMQ stored all of it. Failed
// sends are retried with capped exponential backoff, for as long as it
// takes: the outbox holds the events meanwhile.
type Forwarder struct {
	cfg   ForwarderConfig
	src   Source
	log   *slog.Logger
	Stats ForwarderStats

	mu        sync.Mutex
	running   bool
	draining  bool
	stopReads context.CancelFunc // wakes a blocked Read when draining starts
	cancelRun context.CancelFunc
	done      chan struct{}
	newSender func() (sender, error)
	queues    *channelQueueSelector
}

// sender is the part of the rocketmq-client-go producer the forwarder uses.
type sender interface {
	Start() error
	Shutdown() error
	SendSync(ctx context.Context, msgs ...*primitive.Message) (*primitive.SendResult, error)
}

// NewForwarder returns a Forwarder draining src. Call Run.
func NewForwarder(src Source, cfg ForwarderConfig) (*Forwarder, error) {
	if err := cfg.Routing.validate(); err != nil {
		return nil, fmt.Errorf("new forwarder: %w", err)
	}
	if len(cfg.NameServers) == 0 {
		return nil, errors.New("new forwarder: no name server address")
	}
	if cfg.ProducerGroup == "" {
		cfg.ProducerGroup = "presenced_broker"
	}
	if err := checkName("producer group", cfg.ProducerGroup); err != nil {
		return nil, fmt.Errorf("new forwarder: %w", err)
	}
	if cfg.InstanceName == "" {
		cfg.InstanceName = uniqueInstanceName("producer")
	}
	if cfg.Window <= 0 {
		cfg.Window = 256
	}
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = 3 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	f := &Forwarder{cfg: cfg, src: src, log: cfg.Log.With("component", "forwarder"), done: make(chan struct{}),
		queues: newChannelQueueSelector()}
	f.newSender = f.newProducer
	return f, nil
}

func (f *Forwarder) newProducer() (sender, error) {
	addrs, err := ResolveNameServers(context.Background(), f.cfg.NameServers)
	if err != nil {
		return nil, err
	}
	opts := []producer.Option{
		producer.WithNameServer(addrs),
		producer.WithGroupName(f.cfg.ProducerGroup),
		producer.WithInstanceName(f.cfg.InstanceName),
		producer.WithSendMsgTimeout(f.cfg.SendTimeout),
		// The forwarder retries itself, forever, with backoff; the
		// client's own immediate retries would only hide failures.
		producer.WithRetry(0),
		producer.WithQueueSelector(f.queues),
	}
	if f.cfg.AccessKey != "" {
		opts = append(opts, producer.WithCredentials(primitive.Credentials{AccessKey: f.cfg.AccessKey, SecretKey: f.cfg.SecretKey}))
	}
	p, err := producer.NewDefaultProducer(opts...)
	if err != nil {
		return nil, fmt.Errorf("new rocketmq producer: %w", err)
	}
	return p, nil
}

// Run forwards until ctx ends (returning nil) or Shutdown has drained the
// outbox (returning nil). It returns an error when the producer cannot be
// created or the outbox cannot be read (a corrupt record stops it: it
// cannot be skipped safely). Run may be called once.
func (f *Forwarder) Run(ctx context.Context) error {
	f.mu.Lock()
	if f.running {
		f.mu.Unlock()
		return errors.New("forwarder: Run called twice")
	}
	f.running = true
	runCtx, cancelRun := context.WithCancel(ctx)
	readCtx, stopReads := context.WithCancel(runCtx)
	if f.draining {
		stopReads()
	}
	f.cancelRun, f.stopReads = cancelRun, stopReads
	f.mu.Unlock()
	defer close(f.done)
	defer cancelRun()

	p, err := f.newSender()
	if err != nil {
		return fmt.Errorf("forwarder: %w", err)
	}
	if err := p.Start(); err != nil {
		return fmt.Errorf("forwarder: start rocketmq producer: %w", err)
	}
	defer p.Shutdown()
	if r, ok := f.src.(rewinder); ok {
		r.Rewind()
	}
	f.log.Info("forwarding events to rocketmq", "topic", f.cfg.Routing.Topic, "perGroupTopics", f.cfg.Routing.PerGroupTopics, "instance", f.cfg.InstanceName)

	// Acknowledging costs two fsyncs (checkpoint and directory), so while
	// a backlog drains, acknowledgements are batched: at most every
	// ackInterval, and whenever the outbox has nothing more to read. A
	// crash in between only resends events, which the store absorbs.
	var sent, acked uint64
	lastAck := time.Now()
	// Read with an already cancelled context returns what is waiting
	// without waiting (see Source).
	doneCtx, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	ack := func() error {
		if sent == acked {
			return nil
		}
		if err := f.src.Ack(sent); err != nil {
			return fmt.Errorf("forwarder: acknowledge outbox: %w", err)
		}
		acked, lastAck = sent, time.Now()
		return nil
	}
	for {
		entries, err := f.src.Read(doneCtx, f.cfg.Window) // never waits
		if len(entries) == 0 && err != nil && errors.Is(err, context.Canceled) {
			// Caught up: acknowledge, then wait for more.
			if err := ack(); err != nil {
				return err
			}
			entries, err = f.src.Read(readCtx, f.cfg.Window)
		}
		if err != nil {
			if runCtx.Err() != nil {
				return ack()
			}
			if readCtx.Err() != nil && errors.Is(err, context.Canceled) { // draining, and nothing is left
				f.log.Info("forwarder drained the outbox")
				return ack()
			}
			return errors.Join(fmt.Errorf("forwarder: read outbox: %w", err), ack())
		}
		if err := f.forward(runCtx, p, entries); err != nil {
			return ack() // runCtx ended while retrying
		}
		sent = entries[len(entries)-1].Seq
		f.Stats.Forwarded.Add(uint64(len(entries)))
		if time.Since(lastAck) >= ackInterval {
			if err := ack(); err != nil {
				return err
			}
		}
	}
}

// ackInterval is the longest the forwarder holds back acknowledging while
// a backlog drains.
const ackInterval = 100 * time.Millisecond

// Shutdown asks Run to forward what the outbox holds, including entries
// appended meanwhile, and return. It waits for that until ctx ends; then
// it stops Run at once (what is left stays in the outbox for the next
// start) and returns ctx.Err().
func (f *Forwarder) Shutdown(ctx context.Context) error {
	f.mu.Lock()
	f.draining = true
	running, stopReads, cancelRun := f.running, f.stopReads, f.cancelRun
	f.mu.Unlock()
	if !running {
		return nil
	}
	stopReads()
	select {
	case <-f.done:
		return nil
	case <-ctx.Done():
		cancelRun()
		<-f.done
		return ctx.Err()
	}
}

// forward sends entries, retrying failed requests until they succeed or ctx
// ends. Entries are grouped by topic (per-group topics keep each channel's
// events in one group, so their relative order holds), then by the queue
// of their channel (see channelQueueSelector); the groups are independent
// and go out concurrently.
func (f *Forwarder) forward(ctx context.Context, p sender, entries []Entry) error {
	var order []string
	byTopic := map[string][]outMessage{}
	for _, e := range entries {
		msg, err := f.cfg.Routing.message(e)
		if err != nil {
			f.Stats.Skipped.Add(1)
			f.log.Error("forwarder skips an outbox record it cannot send", "seq", e.Seq, "err", err)
			continue
		}
		if _, ok := byTopic[msg.topic]; !ok {
			order = append(order, msg.topic)
		}
		byTopic[msg.topic] = append(byTopic[msg.topic], msg)
	}
	var groups []queueGroup
	for _, topic := range order {
		msgs := byTopic[topic]
		if f.cfg.NoBatch {
			groups = append(groups, queueGroup{queue: -1, msgs: msgs})
			continue
		}
		if f.queues.queueCount(topic) == 0 && len(msgs) > 1 {
			// The topic's queue count is learnt from the first send:
			// a message alone goes to its channel's queue.
			if err := f.sendRetrying(ctx, p, queueGroup{queue: -1, msgs: msgs[:1]}); err != nil {
				return err
			}
			msgs = msgs[1:]
		}
		groups = append(groups, byQueue(msgs, f.queues.queueCount(topic))...)
	}
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Go(func() { errs[i] = f.sendRetrying(ctx, p, g) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// sendRetrying sends g until all of it is stored.
func (f *Forwarder) sendRetrying(ctx context.Context, p sender, g queueGroup) error {
	backoff := presence.Backoff{Min: 100 * time.Millisecond, Max: f.cfg.MaxBackoff}
	for {
		var err error
		g.msgs, err = f.send(ctx, p, g)
		if err == nil {
			if backoff.Failures() > 0 {
				f.Stats.Backoff.Store(false)
				f.log.Info("rocketmq send recovered", "attempts", backoff.Failures()+1)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		f.Stats.Backoff.Store(true)
		if n := backoff.Failures(); n == 0 || n%20 == 19 {
			f.log.Warn("rocketmq send failed; retrying", "err", err, "topic", g.msgs[0].topic, "messages", len(g.msgs), "attempt", n+1)
		}
		if err := backoff.Wait(ctx); err != nil {
			return err
		}
	}
}

// send makes one attempt and returns the messages still to be sent: one
// batch request, or with NoBatch one request per message, concurrently.
func (f *Forwarder) send(ctx context.Context, p sender, g queueGroup) ([]outMessage, error) {
	if !f.cfg.NoBatch {
		var msg *primitive.Message
		if len(g.msgs) == 1 {
			msg = g.msgs[0].primitive()
		} else {
			msg = batchMessage(g.msgs, g.queue)
		}
		if err := f.sendOne(ctx, p, msg); err != nil {
			return g.msgs, err
		}
		return nil, nil
	}
	errs := make([]error, len(g.msgs))
	var wg sync.WaitGroup
	for i, msg := range g.msgs {
		wg.Go(func() { errs[i] = f.sendOne(ctx, p, msg.primitive()) })
	}
	wg.Wait()
	var failed []outMessage
	for i, err := range errs {
		if err != nil {
			failed = append(failed, g.msgs[i])
		}
	}
	if len(failed) > 0 {
		return failed, errors.Join(errs...)
	}
	return nil, nil
}

// sendOne makes one SendSync request.
func (f *Forwarder) sendOne(ctx context.Context, p sender, msg *primitive.Message) error {
	sendCtx, cancel := context.WithTimeout(ctx, f.cfg.SendTimeout)
	defer cancel()
	res, err := p.SendSync(sendCtx, msg)
	if err == nil && res != nil && res.Status != primitive.SendOK {
		// Flush or replication timeouts: the master stored the message,
		// but not as durably as configured. Resend rather than guess.
		err = fmt.Errorf("send status %d", res.Status)
	}
	if err != nil {
		f.Stats.SendErrors.Add(1)
		return err
	}
	f.Stats.Requests.Add(1)
	return nil
}
