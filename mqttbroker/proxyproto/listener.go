package proxyproto

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config configures a Listener.
type Config struct {
	// Versions are the header versions accepted from trusted peers.
	Versions Versions
	// Trusted are the peers (proxies) that must send a header. Any other
	// peer is a direct client and must not: its connection is refused if
	// it starts with one, so that nobody can forge an address.
	Trusted []netip.Prefix
	// Timeout bounds the wait for a trusted peer's header; for other
	// peers, the wait for their first bytes, after which the connection is
	// handed on as it is. Default 5s.
	Timeout time.Duration
	// MaxPending bounds the connections whose first bytes are awaited at
	// once; more are closed at once (Stats.OverLimit). Default 1024.
	MaxPending int
	// Name names the listener in logs ("mqtt", "ws").
	Name string
	// Log receives the refusals, rate-limited; default slog.Default().
	Log *slog.Logger
}

// Stats are a Listener's counters, each a result of reading the start of a
// connection.
type Stats struct {
	Proxied   int64 // header with the relayed addresses: handed on with them
	Local     int64 // header without addresses (v2 LOCAL, v1 UNKNOWN, other families): handed on as it is
	Direct    int64 // an untrusted peer without a header: handed on as it is
	Untrusted int64 // an untrusted peer that sent a header: refused
	Invalid   int64 // a trusted peer whose header was missing, malformed, too long or of a version not accepted: refused
	Timeout   int64 // a trusted peer that sent no complete header in time: refused
	OverLimit int64 // closed at once: MaxPending connections were being read
}

// result kinds, indexes of Listener.counts and the log limiter.
const (
	resProxied = iota
	resLocal
	resDirect
	resUntrusted
	resInvalid
	resTimeout
	resOverLimit
	numResults
)

// logEvery is the rate limit of refusal logs: one per kind per interval,
// with the number suppressed since.
const logEvery = 10 * time.Second

// Listener reads the PROXY protocol header of each connection accepted on
// an inner listener and hands the connection on with the addresses it
// names. Headers are read on a goroutine per connection, bounded in number
// (MaxPending), time (Timeout) and size (107 bytes for v1, MaxHeaderLen for
// v2), so a slow peer holds up nobody else. Exactly the header's bytes are
// consumed (the socket is peeked, then read), so a connection is handed on
// as the *net.TCPConn it was — parkable, keepalive-capable — only its
// addresses replaced.
type Listener struct {
	inner net.Listener
	cfg   Config

	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup

	mu      sync.Mutex
	reading map[net.Conn]struct{} // whose first bytes are awaited
	err     error                 // the inner listener's failure

	counts     [numResults]atomic.Int64
	lastLog    [numResults]atomic.Int64 // unix ns
	suppressed [numResults]atomic.Int64
}

// NewListener starts accepting on inner; Close stops it and closes inner.
func NewListener(inner net.Listener, cfg Config) *Listener {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 1024
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Versions == 0 {
		cfg.Versions = Any
	}
	l := &Listener{inner: inner, cfg: cfg, conns: make(chan net.Conn), done: make(chan struct{}),
		reading: make(map[net.Conn]struct{})}
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

// Accept returns the next connection whose start has been read.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.err != nil {
			return nil, l.err
		}
		return nil, net.ErrClosed
	}
}

// Close closes the inner listener and every connection still being read,
// and waits for the goroutines of the listener.
func (l *Listener) Close() error {
	err := l.inner.Close()
	l.stop(nil)
	l.wg.Wait()
	return err
}

// stop ends Accept with err (nil: closed) and closes the connections being
// read.
func (l *Listener) stop(err error) {
	l.once.Do(func() {
		l.mu.Lock()
		l.err = err
		for c := range l.reading {
			c.Close()
		}
		l.mu.Unlock()
		close(l.done)
	})
}

// Addr is the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// Stats returns a snapshot of the counters.
func (l *Listener) Stats() Stats {
	c := &l.counts
	return Stats{Proxied: c[resProxied].Load(), Local: c[resLocal].Load(), Direct: c[resDirect].Load(),
		Untrusted: c[resUntrusted].Load(), Invalid: c[resInvalid].Load(), Timeout: c[resTimeout].Load(),
		OverLimit: c[resOverLimit].Load()}
}

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	wait := 5 * time.Millisecond
	for {
		c, err := l.inner.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
				errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) {
				// Passes with time, as descriptors are freed.
				select {
				case <-time.After(wait):
					wait = min(2*wait, time.Second)
					continue
				case <-l.done:
					return
				}
			}
			if errors.Is(err, net.ErrClosed) {
				err = nil
			}
			l.stop(err)
			return
		}
		wait = 5 * time.Millisecond
		l.mu.Lock()
		full := len(l.reading) >= l.cfg.MaxPending
		closed := l.isDone()
		if !full && !closed {
			l.reading[c] = struct{}{}
			l.wg.Add(1)
		}
		l.mu.Unlock()
		switch {
		case closed:
			c.Close()
		case full:
			c.Close()
			l.count(resOverLimit, c, nil)
		default:
			go l.serve(c)
		}
	}
}

func (l *Listener) isDone() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// serve reads the start of c and hands it on, or closes it.
func (l *Listener) serve(c net.Conn) {
	defer l.wg.Done()
	c.SetReadDeadline(time.Now().Add(l.cfg.Timeout))
	out, res, err := l.readStart(c)
	l.mu.Lock()
	delete(l.reading, c)
	l.mu.Unlock()
	if l.isDone() {
		c.Close() // closed by Close: not the peer's doing
		return
	}
	l.count(res, c, err)
	if err != nil {
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	select {
	case l.conns <- out:
	case <-l.done:
		out.Close()
	}
}

// count records a result; refusals are logged, at most one per kind per
// logEvery.
func (l *Listener) count(res int, c net.Conn, err error) {
	l.counts[res].Add(1)
	if res == resProxied || res == resLocal || res == resDirect {
		return
	}
	now := time.Now().UnixNano()
	last := l.lastLog[res].Load()
	if now-last < int64(logEvery) || !l.lastLog[res].CompareAndSwap(last, now) {
		l.suppressed[res].Add(1)
		return
	}
	msg := map[int]string{
		resUntrusted: "PROXY protocol header from an untrusted peer: connection refused",
		resInvalid:   "no valid PROXY protocol header from a trusted proxy: connection refused",
		resTimeout:   "no PROXY protocol header from a trusted proxy in time: connection refused",
		resOverLimit: "too many connections awaiting their PROXY protocol header: connection closed",
	}[res]
	l.cfg.Log.Warn(msg, "listener", l.cfg.Name, "remote", c.RemoteAddr().String(), "err", err,
		"suppressed_since_last", l.suppressed[res].Swap(0))
}

// trusted reports whether the peer of c must send a header.
func (l *Listener) trusted(c net.Conn) bool {
	tcp, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, ok := netip.AddrFromSlice(tcp.IP)
	if !ok {
		return false
	}
	ip = ip.Unmap()
	for _, p := range l.cfg.Trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// errUntrusted refuses a header from a peer not in Trusted.
var errUntrusted = errors.New("proxyproto: header from an untrusted peer")

// readStart reads the start of c: the header of a trusted peer, or just
// enough of an untrusted peer's stream to know it carries none.
func (l *Listener) readStart(c net.Conn) (net.Conn, int, error) {
	src := newSource(c)
	if !l.trusted(c) {
		if src.raw == nil {
			// Cannot look without consuming: the broker's own checks
			// refuse a stream that does not start with CONNECT.
			return c, resDirect, nil
		}
		for need := 1; ; need++ {
			b, err := src.atLeast(need)
			if err != nil {
				// Silent or gone: the broker's own timeouts and reads
				// take it from here.
				return c, resDirect, nil
			}
			isHeader, err := Signature(b)
			if errors.Is(err, ErrIncomplete) {
				need = len(b)
				continue
			}
			if isHeader {
				return nil, resUntrusted, errUntrusted
			}
			return c, resDirect, nil
		}
	}
	for need := 1; ; {
		b, err := src.atLeast(need)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, resTimeout, err
			}
			return nil, resInvalid, err
		}
		h, n, err := Parse(b, l.cfg.Versions)
		if errors.Is(err, ErrIncomplete) {
			need = len(b) + 1
			continue
		}
		if err != nil {
			return nil, resInvalid, err
		}
		rest, err := src.consume(n)
		if err != nil {
			return nil, resInvalid, err
		}
		res := resLocal
		if h.Proxied {
			res = resProxied
		}
		return relayed(c, h, rest), res, nil
	}
}

// source reads the start of a connection: by peeking at the socket when
// it is one (nothing is consumed until the header's length is known), else
// by reading, keeping what follows the header.
type source struct {
	c   net.Conn
	raw syscall.RawConn // nil: read, not peek
	buf []byte
}

func newSource(c net.Conn) *source {
	s := &source{c: c}
	if sc, ok := c.(syscall.Conn); ok && canPeek {
		if raw, err := sc.SyscallConn(); err == nil {
			s.raw = raw
		}
	}
	return s
}

// atLeast returns the first n or more bytes of the stream (up to the
// longest header).
func (s *source) atLeast(n int) ([]byte, error) {
	n = min(n, MaxHeaderLen)
	if s.raw != nil {
		size := 16
		for size < n {
			size *= 2
		}
		if cap(s.buf) < size {
			s.buf = make([]byte, min(size, MaxHeaderLen))
		}
		s.buf = s.buf[:cap(s.buf)]
		got, err := peek(s.raw, s.buf, n)
		s.buf = s.buf[:got]
		if err == nil && got < n {
			err = io.ErrUnexpectedEOF
		}
		return s.buf, err
	}
	for len(s.buf) < n {
		if cap(s.buf)-len(s.buf) < 16 {
			grown := make([]byte, len(s.buf), max(2*cap(s.buf), 64))
			copy(grown, s.buf)
			s.buf = grown
		}
		k, err := s.c.Read(s.buf[len(s.buf):min(cap(s.buf), MaxHeaderLen)])
		s.buf = s.buf[:len(s.buf)+k]
		if err != nil && len(s.buf) < n {
			return s.buf, err
		}
	}
	return s.buf, nil
}

// consume takes the header's n bytes off the stream and returns the bytes
// already read beyond them.
func (s *source) consume(n int) ([]byte, error) {
	if s.raw != nil {
		// Peeked: the bytes are in the socket, read them for good.
		_, err := io.ReadFull(s.c, s.buf[:n])
		return nil, err
	}
	return s.buf[n:], nil
}

// relayed returns c with the header's addresses, after rest (bytes read
// beyond the header).
func relayed(c net.Conn, h Header, rest []byte) net.Conn {
	if len(rest) > 0 {
		c = &prefixConn{Conn: c, prefix: rest}
	}
	if !h.Proxied {
		return c
	}
	remote := net.TCPAddrFromAddrPort(h.Source)
	local := net.TCPAddrFromAddrPort(h.Destination)
	if tc, ok := c.(*net.TCPConn); ok {
		return &tcpConn{TCPConn: tc, remote: remote, local: local}
	}
	return &addrConn{Conn: c, remote: remote, local: local}
}

// tcpConn is a TCP connection relayed by a proxy: the proxy's socket, with
// the addresses of the connection it relays. Every other method is the
// socket's own (SyscallConn included, so the broker can park it).
type tcpConn struct {
	*net.TCPConn
	remote, local *net.TCPAddr
}

func (c *tcpConn) RemoteAddr() net.Addr { return c.remote }
func (c *tcpConn) LocalAddr() net.Addr  { return c.local }

// addrConn is any other relayed connection with the relayed addresses.
type addrConn struct {
	net.Conn
	remote, local *net.TCPAddr
}

func (c *addrConn) RemoteAddr() net.Addr { return c.remote }
func (c *addrConn) LocalAddr() net.Addr  { return c.local }

// prefixConn returns bytes read ahead of the header before the stream's.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
