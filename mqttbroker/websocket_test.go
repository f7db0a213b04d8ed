package mqttbroker

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

// startWSServer is startServer behind a WebSocketListener.
func startWSServer(t *testing.T, cfg Config, wcfg WebSocketConfig) (*testServer, *WebSocketListener) {
	t.Helper()
	rec := newRecorder()
	cfg.Node, cfg.Epoch, cfg.Logger, cfg.AllowAnonymous = "test-node", "test-epoch", discardLogger(), true
	srv := New(cfg, rec.sink)
	inner, err := Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wcfg.Log = discardLogger()
	wl := NewWebSocketListener(inner, wcfg)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(wl) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		wl.Close()
	})
	return &testServer{Server: srv, rec: rec, addr: inner.Addr().String()}, wl
}

// wsClient is the client side of the framing, for tests: Write sends a
// masked binary frame, Read returns the payload of the server's frames and
// records its control frames.
type wsClient struct {
	net.Conn
	br        *bufio.Reader
	left      int64 // payload left of the current data frame
	closeCode uint16
	pongs     [][]byte
}

// wsHandshake opens a WebSocket to addr offering protocols; it returns the
// response and, on 101, the client.
func wsHandshake(t *testing.T, addr, path string, protocols ...string) (*http.Response, *wsClient) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return wsUpgrade(t, nc, addr, path, protocols...)
}

// wsUpgrade does the opening handshake on nc (plain or TLS).
func wsUpgrade(t *testing.T, nc net.Conn, addr, path string, protocols ...string) (*http.Response, *wsClient) {
	t.Helper()
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	if len(protocols) > 0 {
		req += "Sec-WebSocket-Protocol: " + strings.Join(protocols, ", ") + "\r\n"
	}
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(nc, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("handshake response: %v", err)
	}
	nc.SetDeadline(time.Time{})
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return resp, nil
	}
	return resp, &wsClient{Conn: nc, br: br}
}

// frame encodes a masked client frame.
func frame(fin bool, opcode byte, payload []byte) []byte {
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = binary.BigEndian.AppendUint16(append(b, 0x80|126), uint16(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, 0x80|127), uint64(n))
	}
	var key [4]byte
	rand.Read(key[:])
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i&3])
	}
	return b
}

func (c *wsClient) Write(p []byte) (int, error) {
	if _, err := c.Conn.Write(frame(true, wsBinary, p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsClient) Read(p []byte) (int, error) {
	for c.left == 0 {
		var h [2]byte
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return 0, err
		}
		if h[1]&0x80 != 0 {
			return 0, errors.New("server frame is masked")
		}
		size := int64(h[1] & 0x7f)
		switch size {
		case 126:
			var l [2]byte
			io.ReadFull(c.br, l[:])
			size = int64(binary.BigEndian.Uint16(l[:]))
		case 127:
			var l [8]byte
			io.ReadFull(c.br, l[:])
			size = int64(binary.BigEndian.Uint64(l[:]))
		}
		switch h[0] & 0x0f {
		case wsBinary, wsContinuation:
			c.left = size
		case wsText:
			return 0, errors.New("server sent a text frame")
		default:
			payload := make([]byte, size)
			if _, err := io.ReadFull(c.br, payload); err != nil {
				return 0, err
			}
			switch h[0] & 0x0f {
			case wsClose:
				if len(payload) >= 2 {
					c.closeCode = binary.BigEndian.Uint16(payload)
				}
				return 0, io.EOF
			case wsPong:
				c.pongs = append(c.pongs, payload)
			}
		}
	}
	n, err := c.br.Read(p[:min(int64(len(p)), c.left)])
	c.left -= int64(n)
	return n, err
}

// wsConnect opens a WebSocket and connects clientID over it.
func wsConnect(t *testing.T, addr, clientID string, keepalive uint16) (*rawClient, *wsClient) {
	t.Helper()
	resp, ws := wsHandshake(t, addr, "/mqtt", "mqtt")
	if ws == nil {
		t.Fatalf("handshake: %s", resp.Status)
	}
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != "mqtt" {
		t.Fatalf("subprotocol %q, want mqtt", got)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" { // RFC 6455 1.3's example
		t.Fatalf("Sec-WebSocket-Accept %q", got)
	}
	c := &rawClient{t: t, nc: ws}
	if ack := c.connect(&connectPacket{ClientID: clientID, CleanSession: true, Keepalive: keepalive}); ack.ReturnCode != 0 {
		t.Fatalf("CONNACK %d", ack.ReturnCode)
	}
	return c, ws
}

func TestWebSocketConnectPublishAndClientAddress(t *testing.T) {
	srv, wl := startWSServer(t, Config{}, WebSocketConfig{})
	sub, subWS := wsConnect(t, srv.addr, "ws-sub", 60)
	sub.subscribe(1, 0, "t/#")
	pub, _ := wsConnect(t, srv.addr, "ws-pub", 60)
	pub.publish(&publishPacket{Topic: "t/1", Payload: []byte("over websocket")})
	if got := sub.receive(false); string(got.Payload) != "over websocket" {
		t.Fatalf("received %q", got.Payload)
	}
	e := srv.rec.forClient("ws-sub")[0]
	if e.Type != presence.EventConnect || e.ClientIP != subWS.LocalAddr().String() {
		t.Fatalf("connect event %+v, want clientIp %s", e, subWS.LocalAddr())
	}
	if st := wl.Stats(); st.Accepted != 2 || st.Failed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestWebSocketFramesAreAByteStream(t *testing.T) {
	srv, _ := startWSServer(t, Config{}, WebSocketConfig{})
	resp, ws := wsHandshake(t, srv.addr, "/mqtt", "mqttv3.1") // older clients' name
	if ws == nil || resp.Header.Get("Sec-WebSocket-Protocol") != "mqttv3.1" {
		t.Fatalf("handshake with mqttv3.1: %s %v", resp.Status, resp.Header)
	}
	connect := encodePacket(&connectPacket{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "ws-split", CleanSession: true, Keepalive: 60})
	ping := encodePacket(&emptyPacket{Type: typePingreq})
	// CONNECT split over a fragmented message with a ping between the
	// fragments, then two PINGREQs in one frame.
	var b []byte
	b = append(b, frame(false, wsBinary, connect[:3])...)
	b = append(b, frame(true, wsPing, []byte("hi"))...)
	b = append(b, frame(false, wsContinuation, connect[3:5])...)
	b = append(b, frame(true, wsContinuation, connect[5:])...)
	b = append(b, frame(true, wsBinary, append(append([]byte(nil), ping...), ping...))...)
	// One byte at a time: headers and masks cut anywhere.
	for i := range b {
		if _, err := ws.Conn.Write(b[i : i+1]); err != nil {
			t.Fatal(err)
		}
	}
	c := &rawClient{t: t, nc: ws}
	c.expect(typeConnack)
	c.expect(typePingresp)
	c.expect(typePingresp)
	if len(ws.pongs) != 1 || string(ws.pongs[0]) != "hi" {
		t.Fatalf("pongs %q, want one with the ping's payload", ws.pongs)
	}
	// A close frame is echoed and ends the connection as the client's close.
	ws.Conn.Write(frame(true, wsClose, binary.BigEndian.AppendUint16(nil, 1000)))
	c.expectClosed()
	if ws.closeCode != 1000 {
		t.Fatalf("close code %d, want 1000 echoed", ws.closeCode)
	}
	if e := srv.rec.waitTCPClean(t, "ws-split"); e.Reason != presence.ReasonClientClosed {
		t.Fatalf("tcpclean reason %s", e.Reason)
	}
}

func TestWebSocketRefusesBadFrames(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame []byte
		code  uint16
	}{
		{"text frame", frame(true, wsText, encodePacket(&emptyPacket{Type: typePingreq})), wsCloseUnsupported},
		{"frame over the packet size", frame(true, wsBinary, make([]byte, 2048)), wsCloseTooBig},
		{"unmasked", []byte{0x82, 0x02, 0xc0, 0x00}, wsCloseProtocol},
		{"reserved bit", append([]byte{0xc2}, frame(true, wsBinary, []byte{0xc0, 0})[1:]...), wsCloseProtocol},
		{"reserved opcode", frame(true, 0x3, nil), wsCloseProtocol},
		{"stray continuation", frame(true, wsContinuation, []byte{0xc0, 0}), wsCloseProtocol},
		{"fragmented ping", frame(false, wsPing, nil), wsCloseProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := startWSServer(t, Config{MaxPacketSize: 1024}, WebSocketConfig{MaxMessageSize: 1024})
			c, ws := wsConnect(t, srv.addr, "ws-bad", 60)
			if _, err := ws.Conn.Write(tc.frame); err != nil {
				t.Fatal(err)
			}
			c.expectClosed()
			if ws.closeCode != tc.code {
				t.Fatalf("close code %d, want %d", ws.closeCode, tc.code)
			}
			if e := srv.rec.waitTCPClean(t, "ws-bad"); e.Reason != presence.ReasonProtocolError {
				t.Fatalf("tcpclean reason %s, want protocol_error", e.Reason)
			}
		})
	}
}

func TestWebSocketHandshakeRefusals(t *testing.T) {
	srv, wl := startWSServer(t, Config{}, WebSocketConfig{Path: "/ws"})
	resp, ws := wsHandshake(t, srv.addr, "/ws")
	body, _ := io.ReadAll(resp.Body)
	if ws != nil || resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"mqtt" required`) {
		t.Fatalf("without subprotocol: %s %q, want 400 naming mqtt", resp.Status, body)
	}
	if resp, _ := wsHandshake(t, srv.addr, "/ws", "chat"); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("other subprotocol: %s, want 400", resp.Status)
	}
	if resp, _ := wsHandshake(t, srv.addr, "/mqtt", "mqtt"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("wrong path: %s, want 404", resp.Status)
	}
	plain, err := http.Get("http://" + srv.addr + "/ws")
	if err != nil || plain.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("plain GET: %v %v, want 426", plain, err)
	}
	plain.Body.Close()
	waitUntil(t, "four failed handshakes", func() bool { return wl.Stats().Failed == 4 })
	if srv.Stats().Accepted != 0 {
		t.Fatalf("broker accepted %d connections", srv.Stats().Accepted)
	}
}

func TestWebSocketHandshakeBounds(t *testing.T) {
	srv, wl := startWSServer(t, Config{}, WebSocketConfig{HandshakeTimeout: 200 * time.Millisecond, MaxHeaderBytes: 1024, MaxHandshakes: 1})
	// A silent peer holds the only handshake until the timeout closes it.
	silent, err := net.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	waitUntil(t, "the silent handshake to start", func() bool { return wl.handshaking.Load() == 1 })
	over, err := net.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	over.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := over.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection over MaxHandshakes got an answer")
	}
	silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, silent); err != nil && !isConnReset(err) {
		t.Fatalf("silent handshake: %v", err)
	}
	waitUntil(t, "the over-limit count", func() bool { return wl.Stats().OverLimit == 1 })
	// net/http reports both closes after the sockets closed: until then the
	// next connection would still be over MaxHandshakes (closed unanswered,
	// as CI once saw: "huge header: unexpected EOF").
	waitUntil(t, "the handshake slots to be free", func() bool { return wl.handshaking.Load() == 0 })
	// A header over MaxHeaderBytes is refused: 431, or a reset when the
	// server closes on the bytes it did not read.
	nc, err := net.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(nc, "GET /mqtt HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("x", 8<<10)+"\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err == nil && resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("huge header: %s, want 431", resp.Status)
	}
	if err != nil && !isConnReset(err) {
		t.Fatalf("huge header: %v", err)
	}
}

// TestWebSocketIdleConnectionParks: an idle WebSocket client holds no
// goroutine (it waits in the idle poller on its socket) and wakes up for
// its next packet.
func TestWebSocketIdleConnectionParks(t *testing.T) {
	srv, _ := startWSServer(t, Config{}, WebSocketConfig{})
	if srv.idle == nil {
		t.Skip("no idle poller on this platform")
	}
	c, _ := wsConnect(t, srv.addr, "ws-idle", 60)
	parked := func() bool {
		srv.idle.mu.Lock()
		defer srv.idle.mu.Unlock()
		return len(srv.idle.parked) == 1
	}
	waitUntil(t, "the connection to park", parked)
	c.send(&emptyPacket{Type: typePingreq})
	c.expect(typePingresp)
	waitUntil(t, "the connection to park again", parked)
}

// TestWebSocketErrorBehindAPacket: a bad frame in the same read as a good
// packet ends the connection at once (it must not park with the error
// pending).
func TestWebSocketErrorBehindAPacket(t *testing.T) {
	srv, _ := startWSServer(t, Config{}, WebSocketConfig{})
	c, ws := wsConnect(t, srv.addr, "ws-behind", 60)
	ping := encodePacket(&emptyPacket{Type: typePingreq})
	if _, err := ws.Conn.Write(append(frame(true, wsBinary, ping), frame(true, wsText, []byte("x"))...)); err != nil {
		t.Fatal(err)
	}
	c.expect(typePingresp)
	if e := srv.rec.waitTCPClean(t, "ws-behind"); e.Reason != presence.ReasonProtocolError {
		t.Fatalf("tcpclean reason %s", e.Reason)
	}
}

// TestWebSocketOriginAllowed: a handshake from a web page whose Origin
// OriginAllowed refuses (or an opaque "null" origin) gets 403 and never
// reaches the broker; one without an Origin (no browser) or from an
// allowed page connects.
func TestWebSocketOriginAllowed(t *testing.T) {
	srv, wl := startWSServer(t, Config{}, WebSocketConfig{OriginAllowed: func(host string) bool { return host == "localhost" }})
	handshake := func(origin string) int {
		nc, err := net.Dial("tcp", srv.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		req := "GET /mqtt HTTP/1.1\r\nHost: " + srv.addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n"
		if origin != "" {
			req += "Origin: " + origin + "\r\n"
		}
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(nc, req+"\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
		if err != nil {
			t.Fatalf("handshake response: %v", err)
		}
		return resp.StatusCode
	}
	for _, origin := range []string{"http://evil.example", "https://localhost.evil.example:8443", "null"} {
		if code := handshake(origin); code != http.StatusForbidden {
			t.Errorf("Origin %s: %d, want 403", origin, code)
		}
	}
	for _, origin := range []string{"", "http://localhost:8080"} {
		if code := handshake(origin); code != http.StatusSwitchingProtocols {
			t.Errorf("Origin %q: %d, want 101", origin, code)
		}
	}
	waitUntil(t, "two connections handed on, three refused", func() bool { s := wl.Stats(); return s.Accepted == 2 && s.Failed == 3 })
}
