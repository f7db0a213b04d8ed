package main

import (
	"io"
	"net"
	"testing"
	"time"
)

func TestHTTPConnectionsForFileLimit(t *testing.T) {
	for soft, want := range map[uint64]int{0: 0, 1024: 128, 20_000: 1250, 1 << 20: 65536} {
		if got := httpConnectionsForFileLimit(soft); got != want {
			t.Errorf("httpConnectionsForFileLimit(%d) = %d, want %d", soft, got, want)
		}
	}
}

// TestConnLimitListenerClosesWhatIsOverTheLimit: past max, a connection
// is closed as soon as it is accepted and counted; one closed gives its
// place back, once.
func TestConnLimitListenerClosesWhatIsOverTheLimit(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newConnLimitListener(inner, 2)
	defer l.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial()
	dial()
	first, second := <-accepted, <-accepted
	third := dial()
	third.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := third.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("a third connection over a limit of 2: read %v, want EOF (closed at once)", err)
	}
	if open, refused := l.open.Load(), l.refused.Load(); open != 2 || refused != 1 {
		t.Fatalf("open %d, refused %d; want 2 and 1", open, refused)
	}
	first.Close()
	first.Close() // a second Close gives back nothing more
	dial()
	select {
	case <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted after one closed")
	}
	second.Close()
	if open := l.open.Load(); open != 1 {
		t.Fatalf("open %d after two of three closed, want 1", open)
	}
}
