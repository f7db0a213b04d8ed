package mqttbroker

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// WebSocketConfig configures a WebSocketListener.
type WebSocketConfig struct {
	// Path is the HTTP path of the endpoint. Default "/mqtt".
	Path string
	// HandshakeTimeout bounds the opening handshake: reading the request
	// and writing the response. Default 10s.
	HandshakeTimeout time.Duration
	// MaxHeaderBytes bounds the request's header. Default 8 KiB.
	MaxHeaderBytes int
	// MaxMessageSize bounds a frame's payload and a message's (fragments
	// summed); larger ones close the connection with code 1009. Set it to
	// the broker's MaxPacketSize. Default 256 KiB.
	MaxMessageSize int
	// MaxHandshakes bounds the connections in their opening handshake at
	// once; more are closed at once. Default 1024.
	MaxHandshakes int
	// OriginAllowed, when set, decides which web pages may connect: a
	// handshake whose Origin header (a browser sends one; other clients
	// do not) names a host it refuses, or is not a URL ("null"), gets
	// 403. nil admits every origin.
	OriginAllowed func(host string) bool
	// Log receives diagnostics; default slog.Default().
	Log *slog.Logger
}

// WebSocketStats are a WebSocketListener's counters.
type WebSocketStats struct {
	Accepted  int64 // handshakes completed: connections handed to the broker
	Failed    int64 // connections closed without completing one (bad request, timeout, wrong path or subprotocol)
	OverLimit int64 // connections closed at once: MaxHandshakes were in progress
}

// wsSubprotocols are the subprotocols accepted, preferred first: "mqtt"
// [MQTT-6.0.0-3], and "mqttv3.1", which older clients send.
var wsSubprotocols = []string{"mqtt", "mqttv3.1"}

// wsGUID is appended to the key for Sec-WebSocket-Accept [RFC 6455 1.3].
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// WebSocketListener accepts MQTT over WebSocket: it serves the opening
// handshake on an inner listener (net/http, one goroutine per connection
// only while it lasts) and yields each upgraded connection as a net.Conn
// for Server.Serve. The inner listener may be a plain TCP one, one that
// reads the PROXY protocol (the client's address then comes from the
// header), or — for wss — a TLS one (tls.NewListener, over either): the
// TLS handshake is then the first part of the opening handshake, within
// HandshakeTimeout, and one that fails counts as Failed. The broker
// applies its TLS options (Config.TLSIdentity, TLSRequireClientIDMatch)
// to the TLS beneath the framing as to ServeTLS connections, and parks
// idle ones likewise.
type WebSocketListener struct {
	inner net.Listener
	cfg   WebSocketConfig
	http  *http.Server
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
	err   error // set before done closes

	// upgrades counts the handlers running, so that Close waits for them;
	// closing (under hmu) stops new ones from counting in after it.
	hmu      sync.Mutex
	closing  bool
	upgrades sync.WaitGroup

	handshaking                   atomic.Int64
	accepted, closed, overLimited atomic.Int64
}

// NewWebSocketListener starts serving handshakes on inner; Close stops it
// and closes inner.
func NewWebSocketListener(inner net.Listener, cfg WebSocketConfig) *WebSocketListener {
	if cfg.Path == "" {
		cfg.Path = "/mqtt"
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = 8 << 10
	}
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = 256 << 10
	}
	if cfg.MaxHandshakes <= 0 {
		cfg.MaxHandshakes = 1024
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	l := &WebSocketListener{inner: inner, cfg: cfg, conns: make(chan net.Conn), done: make(chan struct{})}
	l.http = &http.Server{
		Handler:           http.HandlerFunc(l.upgrade),
		ReadHeaderTimeout: cfg.HandshakeTimeout,
		ReadTimeout:       cfg.HandshakeTimeout,
		WriteTimeout:      cfg.HandshakeTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ConnState:         l.connState,
		ErrorLog:          slog.NewLogLogger(cfg.Log.Handler(), slog.LevelDebug),
	}
	// One request per connection: a refused client is not kept waiting
	// for a second one.
	l.http.SetKeepAlivesEnabled(false)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		err := l.http.Serve(inner)
		if errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
			err = nil
		}
		l.stop(err)
	}()
	return l
}

// connState bounds and counts the connections in their handshake.
func (l *WebSocketListener) connState(c net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		if l.handshaking.Add(1) > int64(l.cfg.MaxHandshakes) {
			l.overLimited.Add(1)
			c.Close() // reported as StateClosed, which undoes the Add
		}
	case http.StateHijacked:
		l.handshaking.Add(-1)
	case http.StateClosed:
		l.handshaking.Add(-1)
		l.closed.Add(1)
	}
}

// Accept returns the next upgraded connection.
func (l *WebSocketListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		if l.err != nil {
			return nil, l.err
		}
		return nil, net.ErrClosed
	}
}

// Close stops the handshakes (closing their connections) and the inner
// listener, and waits for them.
func (l *WebSocketListener) Close() error {
	l.hmu.Lock()
	l.closing = true
	l.hmu.Unlock()
	err := l.http.Close()
	l.stop(nil)
	l.wg.Wait()
	l.upgrades.Wait()
	return err
}

func (l *WebSocketListener) stop(err error) {
	l.once.Do(func() {
		l.err = err
		close(l.done)
	})
}

// Addr is the inner listener's address.
func (l *WebSocketListener) Addr() net.Addr { return l.inner.Addr() }

// Stats returns a snapshot of the counters.
func (l *WebSocketListener) Stats() WebSocketStats {
	over := l.overLimited.Load()
	return WebSocketStats{Accepted: l.accepted.Load(), Failed: l.closed.Load() - over, OverLimit: over}
}

// originAllowed applies OriginAllowed to a handshake's Origin header.
func (l *WebSocketListener) originAllowed(origin string) bool {
	if l.cfg.OriginAllowed == nil || origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && l.cfg.OriginAllowed(u.Hostname())
}

// upgrade answers the opening handshake [RFC 6455 4.2] and hands the
// connection on.
func (l *WebSocketListener) upgrade(w http.ResponseWriter, r *http.Request) {
	l.hmu.Lock()
	if l.closing {
		l.hmu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	l.upgrades.Add(1)
	l.hmu.Unlock()
	defer l.upgrades.Done()
	fail := func(code int, msg string) {
		l.cfg.Log.Debug("websocket handshake refused", "remote", r.RemoteAddr, "status", code, "reason", msg)
		http.Error(w, msg, code)
	}
	switch {
	case r.URL.Path != l.cfg.Path:
		fail(http.StatusNotFound, "no MQTT endpoint here; it is at "+l.cfg.Path)
		return
	case r.Method != http.MethodGet:
		w.Header().Set("Allow", http.MethodGet)
		fail(http.StatusMethodNotAllowed, "a WebSocket handshake is a GET")
		return
	case !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket"):
		w.Header().Set("Upgrade", "websocket")
		fail(http.StatusUpgradeRequired, "this endpoint speaks MQTT over WebSocket only (Upgrade: websocket)")
		return
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		w.Header().Set("Sec-WebSocket-Version", "13")
		fail(http.StatusUpgradeRequired, "unsupported WebSocket version; 13 is supported")
		return
	}
	if !l.originAllowed(r.Header.Get("Origin")) {
		fail(http.StatusForbidden, "a web page of another site may not connect here (Origin refused)")
		return
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	if k, err := base64.StdEncoding.DecodeString(key); err != nil || len(k) != 16 {
		fail(http.StatusBadRequest, "missing or malformed Sec-WebSocket-Key")
		return
	}
	protocol := chooseSubprotocol(r.Header.Values("Sec-WebSocket-Protocol"))
	if protocol == "" {
		fail(http.StatusBadRequest, `WebSocket subprotocol "mqtt" required (Sec-WebSocket-Protocol: mqtt)`) // [MQTT-6.0.0-3]
		return
	}
	nc, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		fail(http.StatusInternalServerError, "cannot take over the connection")
		return
	}
	// The client may have sent MQTT right behind its request.
	var pending []byte
	if n := rw.Reader.Buffered(); n > 0 {
		pending, _ = rw.Reader.Peek(n)
		pending = append([]byte(nil), pending...)
	}
	sum := sha1.Sum([]byte(key + wsGUID))
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n" +
		"Sec-WebSocket-Protocol: " + protocol + "\r\n\r\n"
	nc.SetWriteDeadline(time.Now().Add(l.cfg.HandshakeTimeout))
	if _, err := nc.Write([]byte(resp)); err != nil {
		l.closed.Add(1) // hijacked connections are not reported closed
		nc.Close()
		return
	}
	nc.SetDeadline(time.Time{})
	l.accepted.Add(1)
	ws := newWSConn(nc, pending, l.cfg.MaxMessageSize)
	select {
	case l.conns <- ws:
	case <-l.done:
		nc.Close()
	}
}

// chooseSubprotocol picks the subprotocol from the client's offers
// (comma-separated, possibly over several header lines).
func chooseSubprotocol(offers []string) string {
	offered := map[string]bool{}
	for _, line := range offers {
		for p := range strings.SplitSeq(line, ",") {
			offered[strings.TrimSpace(p)] = true
		}
	}
	for _, p := range wsSubprotocols {
		if offered[p] {
			return p
		}
	}
	return ""
}

// headerHasToken reports whether a comma-separated header lists token
// (case-insensitively).
func headerHasToken(h http.Header, name, token string) bool {
	for _, line := range h.Values(name) {
		for t := range strings.SplitSeq(line, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
