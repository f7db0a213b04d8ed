package mqttbroker

import (
	"context"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
)

// What the WebSocket listener would cost with gorilla/websocket instead of
// presenced's own framing (BenchmarkIdleWebSocketMemory's "gorilla" case):
// an adapter makes a gorilla connection a net.Conn, as a broker built on it
// would need. Measurement only; the broker does not use it.

// gorillaListener upgrades with gorilla and yields adapted connections.
type gorillaListener struct {
	inner net.Listener
	srv   *http.Server
	conns chan net.Conn
	done  chan struct{}
}

func newGorillaListener(inner net.Listener) *gorillaListener {
	l := &gorillaListener{inner: inner, conns: make(chan net.Conn), done: make(chan struct{})}
	up := websocket.Upgrader{Subprotocols: []string{"mqtt"}}
	l.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		select {
		case l.conns <- &gorillaConn{Conn: c}:
		case <-l.done:
			c.Close()
		}
	})}
	go l.srv.Serve(inner)
	return l
}

func (l *gorillaListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *gorillaListener) Close() error {
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	return l.srv.Close()
}
func (l *gorillaListener) Addr() net.Addr { return l.inner.Addr() }

// gorillaConn reads the binary messages of a gorilla connection as a
// stream: Read waits in NextReader, on the connection's goroutine, with
// gorilla's buffered reader.
type gorillaConn struct {
	*websocket.Conn
	r io.Reader
}

func (c *gorillaConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			_, r, err := c.NextReader()
			if err != nil {
				return 0, err
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if err == io.EOF {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *gorillaConn) Write(p []byte) (int, error) {
	if err := c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *gorillaConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// listenGorilla is Listen behind a gorilla listener.
func listenGorilla() (net.Listener, net.Listener, error) {
	inner, err := Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	return inner, newGorillaListener(inner), nil
}
