package mqttbroker

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkIdleWebSocketMemory measures what an idle MQTT-over-WebSocket
// connection (handshake and CONNECT done, nothing subscribed) costs: the
// broker in this process behind a WebSocketListener, beside plain TCP for
// reference, and — in the same run — mosquitto's websockets listener
// (a child process, /usr/sbin/mosquitto). The clients are bare blocking
// sockets of this process, so they add (almost) nothing to its Go memory.
//
//	go test -run '^$' -bench IdleWebSocketMemory -benchtime 1x ./mqttbroker
//
// MQTTBROKER_IDLE_CONNS sets the number of connections (default 9000; each
// takes two descriptors in this process). MQTTBROKER_MOSQUITTO names the
// mosquitto binary (default /usr/sbin/mosquitto; missing: skipped).
func BenchmarkIdleWebSocketMemory(b *testing.B) {
	n := 9000
	if v, err := strconv.Atoi(os.Getenv("MQTTBROKER_IDLE_CONNS")); err == nil && v > 0 {
		n = v
	}
	for _, kind := range []string{"tcp", "websocket", "gorilla-websocket", "mosquitto-websocket"} {
		b.Run(kind, func(b *testing.B) {
			for range b.N {
				switch kind {
				case "mosquitto-websocket":
					idleMosquittoWS(b, n)
				default:
					idleBroker(b, n, kind)
				}
			}
		})
	}
}

// idleBroker opens n idle connections to a broker in this process.
func idleBroker(b *testing.B, n int, kind string) {
	srv := New(Config{AllowAnonymous: true, Logger: discardLogger(), Node: "bench", Epoch: "e"}, nil)
	inner, err := Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var ln net.Listener = inner
	ws := kind != "tcp"
	switch kind {
	case "websocket":
		ln = NewWebSocketListener(inner, WebSocketConfig{Log: discardLogger()})
	case "gorilla-websocket":
		inner.Close()
		if inner, ln, err = listenGorilla(); err != nil {
			b.Fatal(err)
		}
	}
	go srv.Serve(ln)
	defer srv.Shutdown(b.Context())
	sa := sockaddr(b, inner.Addr())
	open := func(id string) int {
		if ws {
			return wsRawConnect(b, sa, id)
		}
		return rawConnect(b, sa, id)
	}
	fds := []int{open("warm-up")}
	runtime.GC()
	debug.FreeOSMemory()
	before, rssBefore := memNow(), rssBytes()
	for i := range n {
		fds = append(fds, open("idle-"+strconv.Itoa(i)))
	}
	time.Sleep(200 * time.Millisecond)
	runtime.GC()
	runtime.GC() // the second cycle shrinks the stacks grown by CONNECT
	debug.FreeOSMemory()
	after, rssAfter := memNow(), rssBytes()
	// Signed: the handshakes' goroutines are gone, so the stacks in use
	// may have shrunk.
	b.ReportMetric(float64(int64(after.HeapInuse)-int64(before.HeapInuse))/float64(n), "heap-B/conn")
	b.ReportMetric(float64(int64(after.StackInuse)-int64(before.StackInuse))/float64(n), "stack-B/conn")
	b.ReportMetric(float64(rssAfter-rssBefore)/float64(n), "rss-B/conn")
	if srv.idle != nil {
		srv.idle.mu.Lock()
		parked := len(srv.idle.parked)
		srv.idle.mu.Unlock()
		b.ReportMetric(float64(parked)/float64(n+1), "parked/conn")
	}
	for _, fd := range fds {
		syscall.Close(fd)
	}
}

// idleMosquittoWS opens n idle WebSocket connections to a mosquitto child.
func idleMosquittoWS(b *testing.B, n int) {
	bin := os.Getenv("MQTTBROKER_MOSQUITTO")
	if bin == "" {
		bin = "/usr/sbin/mosquitto"
	}
	if _, err := os.Stat(bin); err != nil {
		b.Skipf("no mosquitto: %v", err)
	}
	freePort := func() *net.TCPAddr {
		probe, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer probe.Close()
		return probe.Addr().(*net.TCPAddr)
	}
	addr, plain := freePort(), freePort()
	// mosquitto 2.0.11 with Debian's libwebsockets binds a websockets
	// listener to an interface name ("lo"), not an address, and starts
	// only with a plain listener beside it.
	conf := filepath.Join(b.TempDir(), "mosquitto.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("listener %d 127.0.0.1\nlistener %d lo\nprotocol websockets\nallow_anonymous true\nmax_connections -1\n",
		plain.Port, addr.Port)), 0o600)
	cmd := exec.Command(bin, "-c", conf)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	sa := sockaddr(b, addr)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr.String())
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("mosquitto not listening: %s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	fds := []int{wsRawConnect(b, sa, "warm-up")}
	time.Sleep(200 * time.Millisecond)
	rssBefore := pidRSS(cmd.Process.Pid)
	// In parallel: mosquitto's CONNACK over WebSocket waits out a delayed
	// ACK (~200 ms) per connection. The clients' goroutines are in this
	// process, not in the one measured.
	conns := make([]int, n)
	var wg sync.WaitGroup
	for w := range 100 {
		wg.Go(func() {
			for i := w; i < n; i += 100 {
				conns[i] = wsRawConnect(b, sa, "idle-"+strconv.Itoa(i))
			}
		})
	}
	wg.Wait()
	fds = append(fds, conns...)
	time.Sleep(time.Second)
	b.ReportMetric(float64(pidRSS(cmd.Process.Pid)-rssBefore)/float64(n), "rss-B/conn")
	for _, fd := range fds {
		syscall.Close(fd)
	}
}

func sockaddr(b *testing.B, a net.Addr) *syscall.SockaddrInet4 {
	tcp := a.(*net.TCPAddr)
	sa := &syscall.SockaddrInet4{Port: tcp.Port}
	copy(sa.Addr[:], tcp.IP.To4())
	return sa
}

// pidRSS reads the resident set size of another process.
func pidRSS(pid int) int64 {
	data, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// wsRawConnect opens a blocking socket, does the WebSocket handshake,
// sends CONNECT in a masked binary frame and reads the CONNACK frame.
func wsRawConnect(b *testing.B, sa *syscall.SockaddrInet4, clientID string) int {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		b.Fatal(err)
	}
	if err := syscall.Connect(fd, sa); err != nil {
		b.Fatal(err)
	}
	req := "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
	if _, err := syscall.Write(fd, []byte(req)); err != nil {
		b.Fatal(err)
	}
	var resp []byte
	buf := make([]byte, 512)
	for !bytes.HasSuffix(resp, []byte("\r\n\r\n")) {
		n, err := syscall.Read(fd, buf)
		if err != nil || n == 0 {
			b.Fatalf("handshake response %q: %v", resp, err)
		}
		resp = append(resp, buf[:n]...)
	}
	if !bytes.HasPrefix(resp, []byte("HTTP/1.1 101")) {
		b.Fatalf("handshake response %q", resp)
	}
	wire := encodePacket(&connectPacket{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: clientID, CleanSession: true})
	if _, err := syscall.Write(fd, frame(true, wsBinary, wire)); err != nil {
		b.Fatal(err)
	}
	var ack [6]byte
	got := 0
	for got < len(ack) {
		n, err := syscall.Read(fd, ack[got:])
		if err != nil || n == 0 {
			b.Fatalf("CONNACK frame % x: %v", ack[:got], err)
		}
		got += n
	}
	if ack[0] != 0x82 || ack[1] != 4 || ack[2] != 0x20 || ack[5] != 0 {
		b.Fatalf("CONNACK frame % x", ack)
	}
	return fd
}
