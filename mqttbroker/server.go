package mqttbroker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/presenced/presenced/mqttbroker/persist"
	"github.com/presenced/presenced/presence"
)

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown.
var ErrServerClosed = errors.New("mqttbroker: server closed")

// isTemporaryAcceptError reports whether an accept error passes with
// time (descriptors or memory freed as connections close).
func isTemporaryAcceptError(err error) bool {
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return true
	}
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// Server is an MQTT broker. Create it with New.
type Server struct {
	cfg  Config
	sink EventSink
	log  *slog.Logger

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	quit      chan struct{} // closed by Shutdown
	wg        sync.WaitGroup

	sessMu   sync.Mutex
	sessions map[string]*session

	subs     subscriptionTree
	retained retainedStore
	budget   sessionBudget
	inbound  byteBudget   // large packets being read (Config.MaxInboundBytesTotal)
	wills    byteBudget   // wills of connected clients, and delayed ones (Config.MaxWillBytesTotal)
	persist  *persistence // nil: persistence off
	// reserve is a descriptor held back for shedding connections when the
	// process runs out of them (see shedOne); nil if none could be opened.
	reserveMu sync.Mutex
	reserve   *os.File
	idle      *idlePoller // nil: every connection keeps a reading goroutine

	stats    stats
	tlsStats tlsStats
}

// New returns a Server that reports lifecycle events to sink (nil discards
// them).
func New(cfg Config, sink EventSink) *Server {
	cfg = cfg.withDefaults()
	if sink == nil {
		sink = func(presence.Event) error { return nil }
	}
	s := &Server{
		cfg:       cfg,
		sink:      sink,
		log:       cfg.Logger,
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
		quit:      make(chan struct{}),
		sessions:  make(map[string]*session),
	}
	s.subs.init()
	s.retained.init(cfg.MaxRetainedMessages, cfg.MaxRetainedBytes)
	s.budget.max = cfg.MaxSessionBytes
	s.inbound.max = cfg.MaxInboundBytesTotal
	s.wills.max = cfg.MaxWillBytesTotal
	if cfg.Persistence != nil {
		var dropped []persist.Op
		if cfg.Persisted != nil {
			dropped = s.restore(cfg.Persisted) // before anything is journaled: nothing of it is again
		}
		s.persist = &persistence{store: cfg.Persistence}
		if len(dropped) > 0 {
			s.persist.stage(dropped...) // removals: never refused
		}
	}
	s.reserve, _ = os.Open(os.DevNull)
	if s.idle = newIdlePoller(); s.idle != nil {
		idle := s.idle
		s.goFunc(func() { s.pollIdle(idle) })
	}
	if cfg.SessionExpiry > 0 {
		s.goFunc(s.expireSessions)
	}
	return s
}

// goFunc runs fn in a goroutine owned by the server: Shutdown waits for it.
// It refuses (returns false) once Shutdown has begun.
func (s *Server) goFunc(fn func()) bool {
	if !s.enter() {
		return false
	}
	go func() {
		defer s.wg.Done()
		fn()
	}()
	return true
}

// enter counts the calling goroutine in the server's WaitGroup, so that
// Shutdown waits for it (the caller calls s.wg.Done when it ends), unless
// Shutdown has begun: then it reports false. A goroutine the server did
// not start (a timer's) enters before it may start others: an Add while
// Shutdown waits on an idle WaitGroup is a panic.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// ListenAndServe listens on the TCP address addr (see Listen) and calls
// Serve.
func (s *Server) ListenAndServe(addr string) error {
	ln, err := Listen(context.Background(), addr)
	if err != nil {
		return fmt.Errorf("listen for mqtt on %s: %w", addr, err)
	}
	return s.Serve(ln)
}

// Listen opens the TCP listener Serve expects: accepted connections get no
// TCP keepalive from the runtime. MQTT has its own keepalive, which the
// broker enforces [MQTT-3.1.2-24]; TCP's is switched on per connection,
// only for clients that declare keepalive 0 (see tcpKeepalive), so that a
// vanished peer of theirs is still noticed. Go's default would otherwise
// cost four setsockopt calls on every accepted connection — a tenth of
// the broker's CPU time under connection churn.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	return lc.Listen(ctx, "tcp", addr)
}

// Serve accepts connections on ln until Shutdown, then returns
// ErrServerClosed. Temporary accept errors back off and retry.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	backoff := presence.Backoff{Min: 5 * time.Millisecond, Max: time.Second}
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			if isTemporaryAcceptError(err) {
				if s.shedOne(ln, err) {
					continue
				}
				wait := backoff.Next()
				s.log.Warn("mqtt accept failed; retrying", "err", err, "backoff", wait)
				select {
				case <-time.After(wait):
				case <-s.quit:
				}
				continue
			}
			return fmt.Errorf("accept mqtt connection: %w", err)
		}
		backoff.Reset()
		s.stats.accepted.Add(1)
		s.startConn(nc)
	}
}

// shedOne handles an accept that failed for want of a descriptor: it lets
// the reserve descriptor go, accepts one connection on it and closes it at
// once (counted in ConnectionsOverLimit), then takes the reserve back.
// Otherwise pending clients would wait in the listen backlog, unanswered,
// for as long as the process stays out of descriptors. It reports whether
// a connection was shed.
func (s *Server) shedOne(ln net.Listener, acceptErr error) bool {
	if !errors.Is(acceptErr, syscall.EMFILE) && !errors.Is(acceptErr, syscall.ENFILE) {
		return false
	}
	s.reserveMu.Lock()
	defer s.reserveMu.Unlock()
	if s.isClosed() {
		return false
	}
	if s.reserve == nil { // taken by someone else last time: try again
		s.reserve, _ = os.Open(os.DevNull)
		return false
	}
	s.reserve.Close()
	nc, err := ln.Accept()
	if err == nil {
		nc.Close()
		s.stats.overLimit.Add(1)
	}
	s.reserve, _ = os.Open(os.DevNull)
	return err == nil
}

// pollIdle waits for a parked connection to become readable, hands the
// waiting on to a successor and becomes the connection's reading
// goroutine. The goroutine the runtime wakes thus reads the first packet
// itself: handing it to a new goroutine instead cost an idle connection a
// second wake-up that a fresh one does not pay (BenchmarkWakeUp).
func (s *Server) pollIdle(idle *idlePoller) {
	c, ok := idle.wait(s.takeUp)
	if !ok {
		return // closed by Shutdown
	}
	// Refused only once Shutdown has begun, which kicks every parked
	// connection itself.
	s.goFunc(func() { s.pollIdle(idle) })
	s.wg.Add(1) // this goroutine still counts, so Add is safe during Shutdown
	c.readLoop()
}

// takeUp runs the reading side of a connection taken out of the idle
// poller on a new goroutine. The caller is counted in the WaitGroup (the
// poller's goroutine, a timer that entered) or is Shutdown kicking while
// the poller still runs, so the WaitGroup is not idle.
func (s *Server) takeUp(c *conn) {
	s.wg.Add(1)
	go c.readLoop()
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// startConn registers nc and starts its reader, or closes it when the
// server is stopping or full.
func (s *Server) startConn(nc net.Conn) {
	c := newConn(s, nc)
	s.mu.Lock()
	full := s.cfg.MaxConnections > 0 && len(s.conns) >= s.cfg.MaxConnections
	if s.closed || full {
		s.mu.Unlock()
		if full {
			s.stats.overLimit.Add(1)
		}
		nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.stats.connections.Add(1)
	s.wg.Add(1)
	s.mu.Unlock()
	go c.serve()
}

// removeConn forgets a finished connection.
func (s *Server) removeConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.stats.connections.Add(-1)
}

// Shutdown stops accepting, closes every connection with tcpclean reason
// server_shutdown — their events reach the sink before Shutdown returns —
// and waits for every goroutine of the server, or for ctx to end.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.quit)
	}
	for ln := range s.listeners {
		ln.Close()
	}
	s.reserveMu.Lock()
	if s.reserve != nil {
		s.reserve.Close()
		s.reserve = nil
	}
	s.reserveMu.Unlock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()

	for _, c := range conns {
		c.kick(presence.ReasonServerShutdown)
	}
	if s.idle != nil {
		// Every parked connection was kicked and taken up; one parking
		// from now on fails on its closed socket and keeps its goroutine.
		s.idle.close()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("shut down mqtt server: %w", ctx.Err())
	}
}

// OpenChannels returns the channel ids of the connections currently held:
// every channel whose connect event is being or has been emitted and that
// is not yet closed. A channel counts before its connect is emitted, so a
// report taken after numbering an event never misses that event's channel.
func (s *Server) OpenChannels() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.conns))
	for c := range s.conns {
		if c.held.Load() {
			ids = append(ids, c.channelID())
		}
	}
	return ids
}

// callSink calls the sink, turning a panic into an error: a faulty sink
// must not take the broker down.
func (s *Server) callSink(e *presence.Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("event sink panicked: %v", r)
		}
	}()
	return s.sink(*e)
}

// newID returns 128 random bits as 32 lowercase hex digits (for
// server-assigned client ids).
func newID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails [crypto/rand]
	return hex.EncodeToString(b[:])
}

// event makes *e, a zero Event, a lifecycle event of c stamped with the
// server clock. It fills the caller's variable field by field: returning
// the Event, or assigning a composite literal, puts a second copy of it
// in the caller's frame (see emit).
func (s *Server) event(e *presence.Event, c *conn, t presence.EventType) {
	e.ClientID = c.clientID
	e.ChannelID = c.channelID()
	e.Type = t
	e.Time = s.cfg.Now().UnixMilli()
	e.ClientIP = c.remoteAddr()
	e.Node = s.cfg.Node
	e.Epoch = s.cfg.Epoch
}

// emit hands e to the sink. Errors are logged and counted; the caller
// decides whether they matter (only for connect).
//
// The event goes by pointer down to callSink, the one copy the sink's
// signature asks for, and the rare paths (a dropped tcpclean, a logged
// error) are calls of their own: every frame between a connection
// goroutine's start and the sink's deepest call counts, since crossing
// a stack size makes the runtime copy the whole stack (runtime.newstack)
// on every connect, and that was a tenth of the broker's CPU in the
// connect storm (issue 15).
func (s *Server) emit(e *presence.Event) error {
	if e.Type == presence.EventTCPClean && s.cfg.DropTCPClean != nil && s.dropTCPClean(e) {
		return nil
	}
	err := s.callSink(e)
	if err != nil {
		s.sinkFailed(e, err)
	}
	return err
}

//go:noinline
func (s *Server) dropTCPClean(e *presence.Event) bool {
	if !s.cfg.DropTCPClean(*e) {
		return false
	}
	s.stats.eventsDropped.Add(1)
	return true
}

//go:noinline
func (s *Server) sinkFailed(e *presence.Event, err error) {
	s.stats.sinkErrors.Add(1)
	s.log.Warn("lifecycle event not accepted by the sink", "event", e.String(), "err", err)
}
