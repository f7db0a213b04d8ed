package test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// A churn driver: many raw MQTT clients connecting and closing without
// pause, each cycle with a client id of its own, so that a test can inject a
// fault mid-churn and then check that every acknowledged connect — and the
// tcpclean of its connection — reached the store.

// churnConfig configures a churn run. Zero values take the defaults.
type churnConfig struct {
	Addr string // MQTT address
	// Prefix starts every client id: ids are <Prefix>w<worker>-c<cycle>.
	Prefix  string
	Workers int // concurrent clients; default 200
	// MaxCycles bounds the cycles of each worker (default 5,000) and
	// MaxDuration the whole run (default 2 minutes): the churn ends by
	// itself even if the test never stops it.
	MaxCycles   int
	MaxDuration time.Duration
}

// churnResult is what a churn run saw, for the verifier.
type churnResult struct {
	// Acked are the ids that got CONNACK 0: their connect must be stored,
	// and the tcpclean of their connection too.
	Acked []string
	// Refused are the ids that got a CONNACK with a non-zero return code.
	Refused map[string]byte
	// Uncertain are the ids whose CONNECT was sent but whose CONNACK never
	// came (the broker died, the connection broke): their connect may or
	// may not be stored, but they must not stay online.
	Uncertain []string
	// DialFailures counts cycles that could not even connect (nothing sent).
	DialFailures int
	// Errors counts the dial and I/O errors of failed cycles by message.
	Errors map[string]int
}

// ids returns every id a CONNECT was sent for.
func (r churnResult) ids() []string {
	all := make([]string, 0, len(r.Acked)+len(r.Refused)+len(r.Uncertain))
	all = append(all, r.Acked...)
	for id := range r.Refused {
		all = append(all, id)
	}
	return append(all, r.Uncertain...)
}

func (r churnResult) String() string {
	return fmt.Sprintf("acknowledged %d, refused %d, uncertain %d, dial failures %d; errors %v",
		len(r.Acked), len(r.Refused), len(r.Uncertain), r.DialFailures, r.Errors)
}

// churn is a running churn.
type churn struct {
	t      *testing.T
	cfg    churnConfig
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// Live counters, for tests that wait for the churn to reach a point.
	acked, refused, unavailable, uncertain, dialFailed atomic.Int64

	// watch, when set, is the presenced the churn runs against: a wait
	// fails at once, with its log, if it has exited.
	watch *proc

	workers []churnWorkerResult // each worker writes only its own
	once    sync.Once
	result  churnResult
}

type churnWorkerResult struct {
	acked     []string
	refused   map[string]byte
	uncertain []string
	dialFails int
	errors    map[string]int
}

// startChurn starts the workers; Stop (also run at cleanup) ends them.
func startChurn(t *testing.T, cfg churnConfig) *churn {
	t.Helper()
	if cfg.Workers <= 0 {
		cfg.Workers = 200
	}
	if cfg.MaxCycles <= 0 {
		cfg.MaxCycles = 5000
	}
	if cfg.MaxDuration <= 0 {
		cfg.MaxDuration = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.MaxDuration)
	c := &churn{t: t, cfg: cfg, cancel: cancel, workers: make([]churnWorkerResult, cfg.Workers)}
	for w := range cfg.Workers {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.work(ctx, w)
		}()
	}
	t.Cleanup(func() { c.Stop() })
	return c
}

// Stop ends the churn, waits for every worker to have closed its
// connection, and returns what the churn saw.
func (c *churn) Stop() churnResult {
	c.once.Do(func() {
		c.cancel()
		c.wg.Wait()
		r := churnResult{Refused: map[string]byte{}, Errors: map[string]int{}}
		for _, w := range c.workers {
			r.Acked = append(r.Acked, w.acked...)
			r.Uncertain = append(r.Uncertain, w.uncertain...)
			for id, code := range w.refused {
				r.Refused[id] = code
			}
			r.DialFailures += w.dialFails
			for msg, n := range w.errors {
				r.Errors[msg] += n
			}
		}
		c.result = r
		c.t.Logf("churn %s stopped: %v", c.cfg.Prefix, r)
	})
	return c.result
}

// counts is a live summary of the churn.
func (c *churn) counts() string {
	return fmt.Sprintf("acknowledged %d, refused %d (0x03: %d), uncertain %d, dial failures %d",
		c.acked.Load(), c.refused.Load(), c.unavailable.Load(), c.uncertain.Load(), c.dialFailed.Load())
}

// waitCount waits until counter reaches n, failing the test after timeout.
func (c *churn) waitCount(what string, counter *atomic.Int64, n int64, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for counter.Load() < n {
		if c.watch != nil && c.watch.exited() {
			c.t.Fatalf("churn: presenced exited (%v) while waiting for %s to reach %d (%s)\n%s",
				c.watch.exitErr, what, n, c.counts(), tail(c.watch.logs.String(), 80))
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("churn: %s did not reach %d within %v (%s)", what, n, timeout, c.counts())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitMoreAcked waits until n more connects than now have been acknowledged.
func (c *churn) waitMoreAcked(n int64, timeout time.Duration) {
	c.t.Helper()
	c.waitCount("acknowledged connects", &c.acked, c.acked.Load()+n, timeout)
}

// Close modes, taken in turn: a polite client, one that just closes, and
// one that vanishes with a reset.
const (
	closeDisconnect = iota // DISCONNECT, wait for the broker to close, close
	closePlain             // close (FIN) without DISCONNECT
	closeReset             // close with RST (linger 0)
	closeModes
)

// ioTimeout bounds every dial, write and read of a cycle.
const ioTimeout = 5 * time.Second

func (c *churn) work(ctx context.Context, w int) {
	res := &c.workers[w]
	res.refused = map[string]byte{}
	res.errors = map[string]int{}
	dialer := net.Dialer{Timeout: ioTimeout}
	backoff := time.Duration(0)
	buf := make([]byte, 64)
	for cycle := 0; cycle < c.cfg.MaxCycles && ctx.Err() == nil; cycle++ {
		id := fmt.Sprintf("%sw%d-c%d", c.cfg.Prefix, w, cycle)
		outcome := c.cycle(ctx, &dialer, id, (w+cycle)%closeModes, buf)
		if outcome.kind == cycleDialFailed && ctx.Err() != nil {
			return // the dial was cancelled by Stop: nothing was sent
		}
		if outcome.err != nil {
			res.errors[errorKind(outcome.err)]++
		}
		switch outcome.kind {
		case cycleAcked:
			res.acked = append(res.acked, id)
			c.acked.Add(1)
			backoff = 0
			continue
		case cycleRefused:
			res.refused[id] = outcome.code
			c.refused.Add(1)
			if outcome.code == 0x03 {
				c.unavailable.Add(1)
			}
		case cycleUncertain:
			res.uncertain = append(res.uncertain, id)
			c.uncertain.Add(1)
		case cycleDialFailed:
			res.dialFails++
			c.dialFailed.Add(1)
		}
		// Refused or failed: back off a little (10 ms doubling to 250 ms,
		// with jitter), then carry on.
		backoff = min(max(2*backoff, 10*time.Millisecond), 250*time.Millisecond)
		pause := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
}

type cycleKind int

const (
	cycleAcked cycleKind = iota
	cycleRefused
	cycleUncertain
	cycleDialFailed
)

// errNoCloseAfterDisconnect: the broker did not close the connection
// within ioTimeout of a DISCONNECT.
var errNoCloseAfterDisconnect = errors.New("no close within 5s of DISCONNECT")

type cycleOutcome struct {
	kind cycleKind
	code byte
	err  error // why a cycle failed
}

// errorKind shortens an error to its cause (no addresses), for counting.
func errorKind(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "EOF"
	}
	return err.Error()
}

// cycle connects once as id, and closes the connection in the given mode
// once CONNACK came. The connection is always closed when it returns.
func (c *churn) cycle(ctx context.Context, dialer *net.Dialer, id string, mode int, buf []byte) cycleOutcome {
	conn, err := dialer.DialContext(ctx, "tcp", c.cfg.Addr)
	if err != nil {
		return cycleOutcome{kind: cycleDialFailed, err: err}
	}
	_ = conn.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := conn.Write(connectPacket(id, 60)); err != nil {
		abortClose(conn)
		return cycleOutcome{kind: cycleUncertain, err: err}
	}
	var connack [4]byte
	if _, err := io.ReadFull(conn, connack[:]); err != nil {
		abortClose(conn)
		return cycleOutcome{kind: cycleUncertain, err: err}
	}
	if connack[0] != 0x20 || connack[1] != 0x02 {
		abortClose(conn)
		return cycleOutcome{kind: cycleUncertain, err: fmt.Errorf("CONNACK header % x, want 20 02", connack[:2])}
	}
	if code := connack[3]; code != 0 {
		conn.Close()
		return cycleOutcome{kind: cycleRefused, code: code}
	}
	switch mode {
	case closeDisconnect:
		// The broker closes after DISCONNECT; reading to EOF first leaves
		// the TIME_WAIT with the broker, not on this side's ports.
		var err error
		if _, err = conn.Write(disconnectPacket); err == nil {
			for err == nil {
				_, err = conn.Read(buf)
			}
		}
		conn.Close()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			// Still acknowledged; counted so that a stalled broker shows.
			return cycleOutcome{kind: cycleAcked, err: errNoCloseAfterDisconnect}
		}
	case closePlain:
		conn.Close()
	default:
		abortClose(conn)
	}
	return cycleOutcome{kind: cycleAcked}
}
