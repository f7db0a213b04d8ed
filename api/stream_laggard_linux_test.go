package api

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

// smallBuffers shrinks the kernel buffers of every accepted connection,
// so that a client that does not read fills them within a few changes.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tcp, ok := c.(*net.TCPConn); ok {
		_ = tcp.SetWriteBuffer(4096)
	}
	return c, err
}

// startSmallBufferServer serves h's API on a loopback listener whose
// connections have small send buffers.
func startSmallBufferServer(t *testing.T, h *harness) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(h.srv)
	srv.Listener = smallBuffers{srv.Listener}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// dialNeverReading opens /stream with a receive buffer as small as the
// kernel allows (set before connect, so the window is small from the
// start) and never reads.
func dialNeverReading(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var sockErr error
		err := c.Control(func(fd uintptr) {
			sockErr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1024)
		})
		return errors.Join(err, sockErr)
	}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(conn, "GET /stream HTTP/1.1\r\nHost: presenced\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	return conn
}

func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count open files: %v", err)
	}
	return len(entries)
}

// connectionGoroutines returns the stacks of the goroutines serving an
// HTTP connection (net/http's per-connection goroutine and what it runs).
// Counting only these, rather than runtime.NumGoroutine, keeps the pool's
// and the runtime's own short-lived goroutines out of the comparison.
func connectionGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var serving []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "net/http.(*conn).serve") {
			serving = append(serving, g)
		}
	}
	return serving
}

// noConnectionGoroutines is a condition for eventually: no goroutine
// serves an HTTP connection; it reports the first one left.
func noConnectionGoroutines() (bool, string) {
	left := connectionGoroutines()
	if len(left) == 0 {
		return true, ""
	}
	return false, fmt.Sprintf("%d goroutines serving connections, the first:\n%s", len(left), left[0])
}

// eventually waits until cond holds, for at most 10s; it reports the last
// observation when it does not.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s (%s)", what, seen)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// closedByServer drains conn and reports whether the server closed it
// (EOF or reset) rather than keeping it open.
func closedByServer(conn net.Conn) error {
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, conn)
	if err == nil || errors.Is(err, syscall.ECONNRESET) {
		return nil
	}
	return err
}

// TestStreamClosesNeverReadingSubscribers: rounds of /stream clients that
// never read, while presence churns. Each is dropped, its connection
// closed by the server, and the server's goroutines and open files return
// to what they were before the round.
func TestStreamClosesNeverReadingSubscribers(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.StreamBuffer = 8
		c.StreamWriteTimeout = 200 * time.Millisecond
	})
	addr := startSmallBufferServer(t, h)
	long := strings.Repeat("x", 200)
	seq := 0
	churn := func(n int) {
		var events []presence.Event
		for range n {
			seq++
			events = append(events, ev(fmt.Sprintf("GID_lag@@@%s-%d", long, seq), fmt.Sprintf("lag-%d", seq), presence.EventConnect, int64(seq)))
		}
		h.apply(events...)
	}
	churn(10) // warm the pool and the feed before the baseline
	fds := openFDs(t)

	const clients = 30
	for round := range 3 {
		conns := make([]net.Conn, clients)
		for i := range conns {
			conns[i] = dialNeverReading(t, addr)
		}
		eventually(t, "subscribed", func() (bool, string) {
			n := h.live.Stream.subscribers()
			return n == clients, fmt.Sprintf("%d subscribers", n)
		})
		// Churn until every subscriber is gone: bounded, each batch of
		// changes is more than a never-reading client's buffers hold.
		for batch := 0; h.live.Stream.subscribers() > 0; batch++ {
			if batch == 200 {
				t.Fatalf("round %d: %d subscribers still attached after 200 batches of changes", round, h.live.Stream.subscribers())
			}
			churn(50)
		}
		// The server side of every connection is gone: no goroutine serves
		// one, open files back to the baseline plus the clients' own sockets.
		eventually(t, "connection goroutines gone", noConnectionGoroutines)
		eventually(t, "open files back to baseline", func() (bool, string) {
			n := openFDs(t)
			return n <= fds+clients, fmt.Sprintf("%d open files, baseline %d + %d clients", n, fds, clients)
		})
		for i, conn := range conns {
			if err := closedByServer(conn); err != nil {
				t.Fatalf("round %d: client %d: connection not closed by the server: %v", round, i, err)
			}
			conn.Close()
		}
		if got := openFDs(t); got > fds {
			t.Fatalf("round %d: %d open files after closing the clients, baseline %d", round, got, fds)
		}
	}
	if dropped := h.live.Stream.dropped.Load(); dropped == 0 {
		t.Error("no subscriber counted as a laggard")
	}
}

// TestStreamHeartbeatCannotBlock: with no change at all, heartbeats fill
// the buffers of a client that never reads; the write deadline then ends
// the stream and closes its connection.
func TestStreamHeartbeatCannotBlock(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Heartbeat = time.Millisecond
		c.StreamWriteTimeout = 200 * time.Millisecond
	})
	addr := startSmallBufferServer(t, h)
	conn := dialNeverReading(t, addr)
	defer conn.Close()
	eventually(t, "subscribed", func() (bool, string) {
		return h.live.Stream.subscribers() == 1, "not yet"
	})
	eventually(t, "stream ended by the write deadline", func() (bool, string) {
		n := h.live.Stream.subscribers()
		return n == 0, fmt.Sprintf("%d subscribers", n)
	})
	eventually(t, "connection goroutines gone", noConnectionGoroutines)
	if err := closedByServer(conn); err != nil {
		t.Fatalf("connection not closed by the server: %v", err)
	}
}
