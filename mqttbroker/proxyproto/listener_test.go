package proxyproto

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// listen starts a Listener on loopback trusting the given prefixes.
func listen(t *testing.T, cfg Config, trusted ...string) *Listener {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range trusted {
		cfg.Trusted = append(cfg.Trusted, netip.MustParsePrefix(p))
	}
	l := NewListener(inner, cfg)
	t.Cleanup(func() { l.Close() })
	return l
}

// dialSend connects to l and writes b.
func dialSend(t *testing.T, l *Listener, b []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	return c
}

// accept returns the next accepted connection, failing after 5 s.
func accept(t *testing.T, l *Listener) net.Conn {
	t.Helper()
	got := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			got <- c
		}
	}()
	select {
	case c := <-got:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("nothing accepted")
		return nil
	}
}

// waitClosed waits until the server side closes c.
func waitClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	// A close with unread bytes is a reset.
	if n, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read until closed: %d bytes, %v", n, err)
	}
}

// waitStat waits until stat of l reports n.
func waitStat(t *testing.T, l *Listener, what string, stat func(Stats) int64, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for stat(l.Stats()) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %d, want %d (%+v)", what, stat(l.Stats()), n, l.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestListenerTrustedHeader(t *testing.T) {
	payload := []byte{0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 0}
	for _, tc := range []struct {
		name   string
		header []byte
		remote string
	}{
		{"v1", []byte("PROXY TCP4 203.0.113.7 10.0.0.1 52311 1883\r\n"), "203.0.113.7:52311"},
		{"v2 ipv4", v2Header(cmdProxy, famTCP4, ipv4Block("203.0.113.7", "10.0.0.1", 52311, 1883)), "203.0.113.7:52311"},
		{"v2 ipv6", v2Header(cmdProxy, famTCP6, ipv6Block("2001:db8::7", "2001:db8::1", 4242, 1883), []byte{0x05, 'i', 'd'}), "[2001:db8::7]:4242"},
		{"v2 local", v2Header(cmdLocal, famUnspec, nil), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := listen(t, Config{}, "127.0.0.0/8")
			client := dialSend(t, l, append(tc.header, payload...))
			c := accept(t, l)
			want := tc.remote
			if want == "" {
				want = client.LocalAddr().String() // LOCAL: the real endpoints
			}
			if got := c.RemoteAddr().String(); got != want {
				t.Fatalf("RemoteAddr %s, want %s", got, want)
			}
			// Exactly the header was consumed, and the socket is still
			// one the broker can park.
			buf := make([]byte, len(payload))
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != string(payload) {
				t.Fatalf("stream after header: %q, %v", buf, err)
			}
			if _, ok := c.(syscall.Conn); !ok {
				t.Fatalf("accepted %T: not a syscall.Conn", c)
			}
		})
	}
}

func TestListenerHeaderSplitAcrossWrites(t *testing.T) {
	l := listen(t, Config{}, "127.0.0.1/32")
	header := []byte("PROXY TCP6 2001:db8::7 2001:db8::1 1 2\r\n")
	client := dialSend(t, l, header[:3])
	time.Sleep(10 * time.Millisecond) // let the listener see the first bytes alone
	if _, err := client.Write(header[3:]); err != nil {
		t.Fatal(err)
	}
	if got := accept(t, l).RemoteAddr().String(); got != "[2001:db8::7]:1" {
		t.Fatalf("RemoteAddr %s", got)
	}
}

func TestListenerRefusals(t *testing.T) {
	mqtt := []byte{0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 0}
	t.Run("untrusted header", func(t *testing.T) {
		l := listen(t, Config{}, "192.0.2.0/24")
		waitClosed(t, dialSend(t, l, []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n")))
		waitClosed(t, dialSend(t, l, v2Header(cmdProxy, famTCP4, ipv4Block("1.2.3.4", "5.6.7.8", 1, 2))))
		waitStat(t, l, "Untrusted", func(s Stats) int64 { return s.Untrusted }, 2)
	})
	t.Run("untrusted direct", func(t *testing.T) {
		l := listen(t, Config{}, "192.0.2.0/24")
		client := dialSend(t, l, mqtt)
		c := accept(t, l)
		if _, ok := c.(*net.TCPConn); !ok || c.RemoteAddr().String() != client.LocalAddr().String() {
			t.Fatalf("direct client handed on as %T from %s", c, c.RemoteAddr())
		}
		buf := make([]byte, len(mqtt))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != string(mqtt) {
			t.Fatalf("stream %q, %v", buf, err)
		}
		waitStat(t, l, "Direct", func(s Stats) int64 { return s.Direct }, 1)
	})
	t.Run("trusted without header", func(t *testing.T) {
		l := listen(t, Config{}, "127.0.0.1/32")
		waitClosed(t, dialSend(t, l, mqtt))
		waitStat(t, l, "Invalid", func(s Stats) int64 { return s.Invalid }, 1)
	})
	t.Run("trusted garbled", func(t *testing.T) {
		l := listen(t, Config{}, "127.0.0.1/32")
		waitClosed(t, dialSend(t, l, []byte("PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n")))
		waitClosed(t, dialSend(t, l, v2Header(cmdProxy, 0x99, nil)))
		waitStat(t, l, "Invalid", func(s Stats) int64 { return s.Invalid }, 2)
	})
	t.Run("trusted version not accepted", func(t *testing.T) {
		l := listen(t, Config{Versions: V2}, "127.0.0.1/32")
		waitClosed(t, dialSend(t, l, []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n")))
		waitStat(t, l, "Invalid", func(s Stats) int64 { return s.Invalid }, 1)
	})
	t.Run("trusted oversized", func(t *testing.T) {
		l := listen(t, Config{}, "127.0.0.1/32")
		long := append([]byte("PROXY UNKNOWN "), make([]byte, 200)...)
		waitClosed(t, dialSend(t, l, long))
		waitStat(t, l, "Invalid", func(s Stats) int64 { return s.Invalid }, 1)
	})
	t.Run("trusted silent", func(t *testing.T) {
		l := listen(t, Config{Timeout: 100 * time.Millisecond}, "127.0.0.1/32")
		waitClosed(t, dialSend(t, l, []byte("PROXY TCP4 1.2")))
		waitStat(t, l, "Timeout", func(s Stats) int64 { return s.Timeout }, 1)
	})
	t.Run("over limit", func(t *testing.T) {
		l := listen(t, Config{MaxPending: 1}, "127.0.0.1/32")
		dialSend(t, l, []byte("PRO")) // holds the only slot
		waitClosed(t, dialSend(t, l, nil))
		waitStat(t, l, "OverLimit", func(s Stats) int64 { return s.OverLimit }, 1)
	})
}

func TestListenerCloseEndsPendingReads(t *testing.T) {
	l := listen(t, Config{Timeout: time.Minute}, "127.0.0.1/32")
	client := dialSend(t, l, []byte("PRO"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		l.mu.Lock()
		n := len(l.reading)
		l.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("connection never read")
		}
		time.Sleep(time.Millisecond)
	}
	l.Close()
	waitClosed(t, client)
	if _, err := l.Accept(); err == nil {
		t.Fatal("Accept after Close succeeded")
	}
}
