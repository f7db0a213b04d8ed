package rocketmqfake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Options configures a Fake. The zero value is usable.
type Options struct {
	// NamesrvAddr and BrokerAddr are the listen addresses, default
	// "127.0.0.1:0" (a free port). After the first Start the actual ports are
	// kept, so Stop/Start comes back on the same addresses. The client
	// insists on an IP:port name server address, so use an IP literal.
	NamesrvAddr string
	BrokerAddr  string

	// Queues is the number of read/write queues of auto-created topics
	// (default 4, like the broker's defaultTopicQueueNums).
	Queues int
	// RetryQueues is the number of queues of %RETRY% and %DLQ% topics
	// (default 1, as in a real broker's subscription group config).
	RetryQueues int

	BrokerName  string // default "broker-a"
	ClusterName string // default "DefaultCluster"

	// NoAutoCreateTopics makes route queries and sends for unknown topics
	// fail with TOPIC_NOT_EXIST, like a broker with autoCreateTopicEnable
	// off. Create topics with CreateTopic. %RETRY%/%DLQ% topics are always
	// created on demand.
	NoAutoCreateTopics bool

	// MaxReconsumeTimes is used by CONSUMER_SEND_MSG_BACK when the request
	// carries none (default 16). rocketmq-client-go always sends its own
	// (consumer.WithMaxReconsumeTimes, default 16), which wins.
	MaxReconsumeTimes int

	// DelayLevels maps delay level n (1-based) to DelayLevels[n-1]. It
	// applies to messages sent with a DELAY property and to consumer retries
	// (level 3+reconsumeTimes unless the consumer asked for one). Nil means
	// every level is immediate, which keeps retry tests fast; use
	// RealDelayLevels for the broker's schedule.
	DelayLevels []time.Duration

	// MaxLongPoll caps how long a PULL_MESSAGE with nothing to return is held
	// (the client asks for 20 s). Zero honours the client.
	MaxLongPoll time.Duration

	// NewGroupsStartAtMaxOffset makes QUERY_CONSUMER_OFFSET answer
	// QUERY_NOT_FOUND for a queue the group never committed, so the client's
	// ConsumeFromWhere decides. By default the fake answers 0, as a real
	// broker does while the queue's first message is still in memory: a new
	// group then reads the whole queue, whatever ConsumeFromWhere says.
	NewGroupsStartAtMaxOffset bool

	// ClientExpiry is how long a client that lost its connection because of
	// the fake (Stop, DropConnections, a Close fault) stays a member of its
	// consumer groups without heartbeating (default 120 s, the broker's
	// channel expiry). A client that closes its own connection leaves at once.
	ClientExpiry time.Duration

	// Logger receives request/fault/unknown-code logs. Nil discards.
	Logger *slog.Logger
}

// RealDelayLevels is the broker's default messageDelayLevel table.
var RealDelayLevels = []time.Duration{
	1 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second,
	1 * time.Minute, 2 * time.Minute, 3 * time.Minute, 4 * time.Minute, 5 * time.Minute,
	6 * time.Minute, 7 * time.Minute, 8 * time.Minute, 9 * time.Minute, 10 * time.Minute,
	20 * time.Minute, 30 * time.Minute, 1 * time.Hour, 2 * time.Hour,
}

// Fake is one process hosting a RocketMQ name server and one master broker.
// All state lives in memory and survives Stop/Start; it is lost with the
// Fake. Methods are safe for concurrent use.
type Fake struct {
	opts Options
	log  *slog.Logger

	// handlers counts request goroutines; loops counts accept/read loops.
	handlers tracker
	loops    tracker
	opaque   atomic.Int32
	gate     gate
	// lastRequest is when the last frame arrived (UnixNano), for Stop's drain.
	lastRequest atomic.Int64

	lifecycle sync.Mutex // serialises Start/Stop/RefuseConnections

	mu sync.Mutex // guards everything below
	// lifecycle state
	running  bool
	stopping bool
	refusing bool
	stopCh   chan struct{} // closed by Stop; replaced by Start
	nsAddr   string        // actual addresses once started
	brAddr   string
	nsLn     net.Listener
	brLn     net.Listener
	conns    map[*conn]struct{}
	resumeAt *time.Timer

	// store
	topics  map[string]*topicState
	byPhy   phyIndex // stored messages by commit-log offset
	nextPhy int64
	records recordArena          // memory of the messages' wire records
	half    map[int64]*storedMsg // prepared transactional messages
	offsets map[offsetKey]int64

	// clients
	clients   map[string]*clientState
	groupSubs map[string]map[string]*subscription // group → topic → last heartbeat's subscription
	locks     map[lockKey]lockState

	// faults and statistics
	faults      []*faultRule
	nextFaultID FaultID
	reqCounts   map[int16]int
	sendCount   int
}

// New returns a stopped Fake.
func New(opts Options) *Fake {
	if opts.NamesrvAddr == "" {
		opts.NamesrvAddr = "127.0.0.1:0"
	}
	if opts.BrokerAddr == "" {
		opts.BrokerAddr = "127.0.0.1:0"
	}
	if opts.Queues <= 0 {
		opts.Queues = 4
	}
	if opts.RetryQueues <= 0 {
		opts.RetryQueues = 1
	}
	if opts.BrokerName == "" {
		opts.BrokerName = "broker-a"
	}
	if opts.ClusterName == "" {
		opts.ClusterName = "DefaultCluster"
	}
	if opts.MaxReconsumeTimes <= 0 {
		opts.MaxReconsumeTimes = 16
	}
	if opts.ClientExpiry <= 0 {
		opts.ClientExpiry = 120 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	f := &Fake{
		opts:      opts,
		log:       log,
		gate:      newGate(),
		conns:     map[*conn]struct{}{},
		topics:    map[string]*topicState{},
		half:      map[int64]*storedMsg{},
		offsets:   map[offsetKey]int64{},
		clients:   map[string]*clientState{},
		groupSubs: map[string]map[string]*subscription{},
		locks:     map[lockKey]lockState{},
		reqCounts: map[int16]int{},
	}
	// The producer falls back to the route of TBW102 when its topic has
	// none; a real cluster with auto-create on always has it.
	f.createTopicLocked(defaultCreateTopicKey, opts.Queues)
	return f
}

// Start opens both listeners. After a Stop it listens on the same
// addresses again (retrying for a few seconds while the port is busy).
func (f *Fake) Start() error {
	f.lifecycle.Lock()
	defer f.lifecycle.Unlock()
	f.mu.Lock()
	if f.running {
		f.mu.Unlock()
		return errors.New("rocketmqfake: already running")
	}
	nsAddr, brAddr := f.opts.NamesrvAddr, f.opts.BrokerAddr
	if f.nsAddr != "" {
		nsAddr, brAddr = f.nsAddr, f.brAddr
	}
	f.mu.Unlock()

	nsLn, err := listenRetry(nsAddr)
	if err != nil {
		return fmt.Errorf("rocketmqfake: name server listen: %w", err)
	}
	brLn, err := listenRetry(brAddr)
	if err != nil {
		nsLn.Close()
		return fmt.Errorf("rocketmqfake: broker listen: %w", err)
	}

	f.mu.Lock()
	f.nsAddr, f.brAddr = nsLn.Addr().String(), brLn.Addr().String()
	f.nsLn, f.brLn = nsLn, brLn
	f.running, f.stopping, f.refusing = true, false, false
	f.stopCh = make(chan struct{})
	f.mu.Unlock()

	f.serve(nsLn, serverNamesrv)
	f.serve(brLn, serverBroker)
	f.log.Info("rocketmqfake started", "namesrv", f.nsAddr, "broker", f.brAddr)
	return nil
}

// listenRetry listens on addr, retrying briefly on EADDRINUSE so a Start
// right after Stop gets its old port back.
func listenRetry(addr string) (net.Listener, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			return ln, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop shuts both servers down the way a broker restart looks to clients:
// listeners close (new connections are refused), long-polling pulls are
// answered PULL_NOT_FOUND and pulls and sends arriving meanwhile get
// SERVICE_NOT_AVAILABLE — so no client request is left unanswered on a
// socket that is about to die (rocketmq-client-go would wait out its 30 s
// pull timeout) — and once the connections are quiet they are closed.
// Stored messages, offsets and group membership are kept for the next Start.
func (f *Fake) Stop() {
	f.lifecycle.Lock()
	defer f.lifecycle.Unlock()
	f.mu.Lock()
	if !f.running {
		f.mu.Unlock()
		return
	}
	f.stopping = true
	f.closeListenersLocked()
	close(f.stopCh)
	f.mu.Unlock()

	f.drainBeforeClose()
	f.closeAllConns()
	if !f.loops.wait(5 * time.Second) {
		f.log.Warn("rocketmqfake: connection loops still running after Stop")
	}
	f.handlers.wait(5 * time.Second)

	f.mu.Lock()
	f.running, f.stopping = false, false
	f.mu.Unlock()
	f.log.Info("rocketmqfake stopped")
}

// drainBeforeClose lets the connections go quiet before Stop closes them.
// Woken pulls answer PULL_NOT_FOUND and the client re-pulls at once; that
// re-pull must be answered (SERVICE_NOT_AVAILABLE, after which the client
// backs off 3 s) rather than be swallowed by the close, or its pull loop
// sits 30 s on a request nobody will answer. So wait until no request has
// arrived for a little while and no handler runs, bounded so a paused fake
// or a chatty client cannot hang Stop.
func (f *Fake) drainBeforeClose() {
	const quiet, limit = 100 * time.Millisecond, 2 * time.Second
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		idle := time.Since(time.Unix(0, f.lastRequest.Load()))
		if idle >= quiet && f.handlers.wait(0) {
			return
		}
		f.handlers.wait(quiet)
		time.Sleep(10 * time.Millisecond)
	}
}

// Close stops the fake; it exists so a Fake can be handed to t.Cleanup.
func (f *Fake) Close() error {
	f.Stop()
	f.Resume()
	return nil
}

// NamesrvAddr returns the name server's "ip:port" (empty before the first
// Start). Pass it to producer.WithNameServer / consumer.WithNameServer.
func (f *Fake) NamesrvAddr() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nsAddr
}

// BrokerAddr returns the broker's "ip:port" (empty before the first Start).
func (f *Fake) BrokerAddr() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.brAddr
}

// BrokerName returns the broker name used in routes and message queues.
func (f *Fake) BrokerName() string { return f.opts.BrokerName }

func (f *Fake) closeListenersLocked() {
	if f.nsLn != nil {
		f.nsLn.Close()
		f.nsLn = nil
	}
	if f.brLn != nil {
		f.brLn.Close()
		f.brLn = nil
	}
}

// tracker counts running goroutines. Unlike sync.WaitGroup it may be
// waited on with a timeout while new goroutines keep being added, which is
// what Stop needs (a read loop can still start a handler while we wait).
type tracker struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // closed when n drops to 0
}

func (t *tracker) add() {
	t.mu.Lock()
	if t.n == 0 {
		t.zero = make(chan struct{})
	}
	t.n++
	t.mu.Unlock()
}

func (t *tracker) done() {
	t.mu.Lock()
	t.n--
	if t.n == 0 {
		close(t.zero)
	}
	t.mu.Unlock()
}

// wait waits at most d for the count to reach zero and reports whether it did.
func (t *tracker) wait(d time.Duration) bool {
	t.mu.Lock()
	if t.n == 0 {
		t.mu.Unlock()
		return true
	}
	ch := t.zero
	t.mu.Unlock()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ch:
		return true
	case <-timer.C:
		return false
	}
}

// sleepCtx sleeps for d unless one of the channels closes first; it
// reports whether the full time elapsed.
func sleepCtx(d time.Duration, cancel ...<-chan struct{}) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	var c0, c1 <-chan struct{}
	if len(cancel) > 0 {
		c0 = cancel[0]
	}
	if len(cancel) > 1 {
		c1 = cancel[1]
	}
	select {
	case <-t.C:
		return true
	case <-c0:
		return false
	case <-c1:
		return false
	}
}

// WaitFor polls cond every 20 ms until it holds or ctx ends.
func WaitFor(ctx context.Context, cond func() bool) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
