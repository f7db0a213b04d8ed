package mqttbroker

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"
)

// BenchmarkIdleSecureWebSocketMemory measures what an idle MQTT over
// secure WebSocket connection (TLS 1.3 handshake, WebSocket handshake and
// CONNECT done, nothing subscribed) costs the broker in this process,
// beside MQTT over TLS for reference. The clients are TLS clients, so they
// run in a child process (this test binary again, TestIdleTLSClients) and
// add nothing to the memory measured here.
//
//	go test -run '^$' -bench IdleSecureWebSocketMemory -benchtime 1x ./mqttbroker
//
// MQTTBROKER_IDLE_CONNS sets the number of connections (default 9000).
func BenchmarkIdleSecureWebSocketMemory(b *testing.B) {
	n := 9000
	if v, err := strconv.Atoi(os.Getenv("MQTTBROKER_IDLE_CONNS")); err == nil && v > 0 {
		n = v
	}
	for _, kind := range []string{"tls", "secure-websocket"} {
		b.Run(kind, func(b *testing.B) {
			for range b.N {
				idleTLSBroker(b, n, kind)
			}
		})
	}
}

func idleTLSBroker(b *testing.B, n int, kind string) {
	srv := New(Config{AllowAnonymous: true, Logger: discardLogger(), Node: "bench", Epoch: "e"}, nil)
	inner, err := Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{benchServerCert(b)}, MinVersion: tls.VersionTLS12}
	if kind == "tls" {
		go srv.ServeTLS(inner, conf)
	} else {
		go srv.Serve(NewWebSocketListener(tls.NewListener(inner, conf), WebSocketConfig{Log: discardLogger()}))
	}
	defer srv.Shutdown(b.Context())

	child := exec.Command(os.Args[0], "-test.run=^TestIdleTLSClients$")
	child.Env = append(os.Environ(), fmt.Sprintf("MQTTBROKER_TLS_CLIENTS=%s %d %s", inner.Addr(), n, kind))
	child.Stderr = os.Stderr
	toChild, _ := child.StdinPipe()
	fromChild, _ := child.StdoutPipe()
	if err := child.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { toChild.Close(); child.Wait() }()
	lines := bufio.NewScanner(fromChild)
	expect := func(want string) {
		for lines.Scan() {
			if lines.Text() == want {
				return
			}
		}
		b.Fatalf("client process ended before %q", want)
	}
	expect("warm") // one connection open
	runtime.GC()
	debug.FreeOSMemory()
	before, rssBefore := memNow(), rssBytes()
	io.WriteString(toChild, "go\n")
	expect("ready")
	time.Sleep(200 * time.Millisecond)
	runtime.GC()
	runtime.GC() // the second cycle shrinks the stacks grown by CONNECT
	debug.FreeOSMemory()
	after, rssAfter := memNow(), rssBytes()
	b.ReportMetric(float64(int64(after.HeapInuse)-int64(before.HeapInuse))/float64(n), "heap-B/conn")
	b.ReportMetric(float64(int64(after.StackInuse)-int64(before.StackInuse))/float64(n), "stack-B/conn")
	b.ReportMetric(float64(rssAfter-rssBefore)/float64(n), "rss-B/conn")
	b.ReportMetric(float64(runtime.NumGoroutine())/float64(n+1), "goroutines/conn")
	if srv.idle != nil {
		srv.idle.mu.Lock()
		parked := len(srv.idle.parked)
		srv.idle.mu.Unlock()
		b.ReportMetric(float64(parked)/float64(n+1), "parked/conn")
	}
}

// TestIdleTLSClients is the client process of
// BenchmarkIdleSecureWebSocketMemory: it opens one connection, says
// "warm", waits for "go", opens the others, says "ready" and holds them
// until its input ends. Skipped unless MQTTBROKER_TLS_CLIENTS is set.
func TestIdleTLSClients(t *testing.T) {
	spec := os.Getenv("MQTTBROKER_TLS_CLIENTS")
	if spec == "" {
		t.Skip("the client process of BenchmarkIdleSecureWebSocketMemory")
	}
	var addr, kind string
	var n int
	if _, err := fmt.Sscan(spec, &addr, &n, &kind); err != nil {
		t.Fatal(err)
	}
	conf := &tls.Config{InsecureSkipVerify: true} // a benchmark's own certificate
	open := func(clientID string) net.Conn {
		nc, err := tls.Dial("tcp", addr, conf)
		if err != nil {
			t.Fatal(err)
		}
		var c net.Conn = nc
		if kind == "secure-websocket" {
			req := "GET /mqtt HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
				"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
			io.WriteString(nc, req)
			br := bufio.NewReader(nc)
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != http.StatusSwitchingProtocols || br.Buffered() != 0 {
				t.Fatalf("handshake: %v %v", resp, err)
			}
			c = &wsClient{Conn: nc, br: br}
		}
		rc := &rawClient{t: t, nc: c}
		if ack := rc.connect(&connectPacket{ClientID: clientID, CleanSession: true}); ack.ReturnCode != 0 {
			t.Fatalf("CONNACK %d", ack.ReturnCode)
		}
		return nc
	}
	conns := []net.Conn{open("warm-up")}
	fmt.Println("warm")
	in := bufio.NewScanner(os.Stdin)
	in.Scan()
	for i := range n {
		conns = append(conns, open("idle-"+strconv.Itoa(i)))
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
}

// benchServerCert makes a self-signed ECDSA P-256 server certificate.
func benchServerCert(b *testing.B) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
