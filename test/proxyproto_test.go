package test

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// requireProgram returns the path of an external program (looked up on
// PATH, then in /usr/sbin, where Debian puts haproxy and mosquitto). When it
// is missing the test is skipped, unless CI is set: there a missing tool
// is a broken machine (make testdeps installs them) and fails the test.
func requireProgram(t *testing.T, name string) string {
	t.Helper()
	if path, err := exec.LookPath(name); err == nil {
		return path
	}
	if path := filepath.Join("/usr/sbin", name); isExecutable(path) {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found (make testdeps installs it)", name)
	}
	t.Skipf("%s not found (make testdeps installs it)", name)
	return ""
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// startHAProxy runs haproxy in the foreground with one TCP frontend per
// backend address, each sending PROXY protocol v2; it returns the frontend
// addresses once they accept.
func startHAProxy(t *testing.T, backends ...string) []string {
	t.Helper()
	bin := requireProgram(t, "haproxy")
	cfg := "global\n  maxconn 256\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n"
	var fronts []string
	for i, backend := range backends {
		front := freeAddr(t)
		fronts = append(fronts, front)
		cfg += fmt.Sprintf("frontend f%d\n  bind %s\n  default_backend b%d\nbackend b%d\n  server presenced %s send-proxy-v2\n", i, front, i, i, backend)
	}
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cmd := exec.Command(bin, "-db", "-f", path)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start haproxy: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	for _, front := range fronts {
		deadline := time.Now().Add(10 * time.Second)
		for {
			// Its own listening socket, not a relayed connection: ask the
			// kernel whether haproxy has bound the port.
			if ln, err := net.Listen("tcp", front); err != nil {
				break
			} else {
				ln.Close()
			}
			select {
			case <-exited:
				t.Fatalf("haproxy exited: %s", logs)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("haproxy not listening on %s: %s", front, logs)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return fronts
}

// fromLoopback2 dials addr from 127.0.0.2, so that the client's address
// differs from haproxy's (127.0.0.1).
func fromLoopback2(network, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	return d.Dial(network, addr)
}

// mqttConnectOver sends CONNECT on conn and returns the CONNACK code.
func mqttConnectOver(t *testing.T, conn net.Conn, clientID string) byte {
	t.Helper()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	defer conn.SetDeadline(time.Time{})
	if _, err := conn.Write(connectPacket(clientID, 60)); err != nil {
		t.Fatalf("send CONNECT: %v", err)
	}
	var connack [4]byte
	if _, err := io.ReadFull(conn, connack[:]); err != nil {
		t.Fatalf("read CONNACK for %q: %v", clientID, err)
	}
	return connack[3]
}

// v2ProxyHeader is a PROXY protocol v2 header for TCP over IPv4.
func v2ProxyHeader(src, dst *net.TCPAddr) []byte {
	b := []byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c")
	b = append(b, src.IP.To4()...)
	b = append(b, dst.IP.To4()...)
	b = binary.BigEndian.AppendUint16(b, uint16(src.Port))
	return binary.BigEndian.AppendUint16(b, uint16(dst.Port))
}

// TestProxyProtocolBehindHAProxy: a real HAProxy with send-proxy-v2 in
// front of the plain and the WebSocket listener; the lifecycle events
// carry the device's address (127.0.0.2:port), not HAProxy's, and a peer
// that is not a trusted proxy cannot forge one.
func TestProxyProtocolBehindHAProxy(t *testing.T) {
	wsAddr := freeAddr(t)
	p := startServe(t, pgtest.URL(t), "--allow-anonymous=true",
		"--mqtt-proxy-protocol", "v2", "--mqtt-ws-addr", wsAddr, "--mqtt-ws-proxy-protocol", "any",
		"--mqtt-proxy-trusted", "127.0.0.1")
	fronts := startHAProxy(t, p.MQTTAddr, wsAddr)

	hasIP := func(ip string) func([]presence.Channel) *presence.Channel {
		return func(chs []presence.Channel) *presence.Channel {
			if c := channelFrom(chs, ip); c != nil && c.Open {
				return c
			}
			return nil
		}
	}

	t.Run("plain", func(t *testing.T) {
		conn, err := fromLoopback2("tcp", fronts[0])
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if code := mqttConnectOver(t, conn, "pp-plain"); code != 0 {
			t.Fatalf("CONNACK %d", code)
		}
		waitChannel(t, p.HTTPAddr, "pp-plain", "a channel from "+conn.LocalAddr().String(), hasIP(conn.LocalAddr().String()))
	})

	t.Run("websocket", func(t *testing.T) {
		dialer := websocket.Dialer{NetDial: fromLoopback2, Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
		ws, resp, err := dialer.Dial("ws://"+fronts[1]+"/mqtt", nil)
		if err != nil {
			t.Fatalf("websocket through haproxy: %v (%v)", err, resp)
		}
		defer ws.Close()
		local := ws.NetConn().LocalAddr().String()
		if err := ws.WriteMessage(websocket.BinaryMessage, connectPacket("pp-ws", 60)); err != nil {
			t.Fatal(err)
		}
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		if typ, msg, err := ws.ReadMessage(); err != nil || typ != websocket.BinaryMessage || len(msg) != 4 || msg[3] != 0 {
			t.Fatalf("CONNACK over websocket: %d % x %v", typ, msg, err)
		}
		waitChannel(t, p.HTTPAddr, "pp-ws", "a channel from "+local, hasIP(local))
	})

	t.Run("untrusted header refused", func(t *testing.T) {
		conn, err := fromLoopback2("tcp", p.MQTTAddr) // straight to presenced, not through haproxy
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		forged := v2ProxyHeader(&net.TCPAddr{IP: net.IPv4(203, 0, 113, 9), Port: 4242}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1883})
		if _, err := conn.Write(append(forged, connectPacket("pp-forged", 60)...)); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := conn.Read(make([]byte, 4)); err == nil {
			t.Fatalf("forged header answered with %d bytes", n)
		}
		p.waitMetricLabels("presenced_mqtt_proxy_connections_total", `listener="mqtt",result="untrusted"`, 1, 10*time.Second)
		if chs := getChannels(t, p.HTTPAddr, "pp-forged"); len(chs) != 0 {
			t.Fatalf("forged client has channels %+v", chs)
		}
	})

	t.Run("untrusted direct client", func(t *testing.T) {
		conn, err := fromLoopback2("tcp", p.MQTTAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if code := mqttConnectOver(t, conn, "pp-direct"); code != 0 {
			t.Fatalf("CONNACK %d", code)
		}
		waitChannel(t, p.HTTPAddr, "pp-direct", "a channel from "+conn.LocalAddr().String(), hasIP(conn.LocalAddr().String()))
	})

	t.Run("trusted peer without header refused", func(t *testing.T) {
		conn, err := net.Dial("tcp", p.MQTTAddr) // from 127.0.0.1: the trusted proxy's address
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.Write(connectPacket("pp-noheader", 60))
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := conn.Read(make([]byte, 4)); err == nil {
			t.Fatalf("headerless connection from the trusted proxy answered with %d bytes", n)
		}
		p.waitMetricLabels("presenced_mqtt_proxy_connections_total", `listener="mqtt",result="invalid"`, 1, 10*time.Second)
	})
	p.waitMetricLabels("presenced_mqtt_proxy_connections_total", `listener="ws",result="proxied"`, 1, 10*time.Second)
}

// waitMetricLabels polls /metrics until the metric with exactly these
// labels reaches at least want.
func (p *proc) waitMetricLabels(name, labels string, want float64, timeout time.Duration) {
	p.t.Helper()
	p.waitSeries(name+"{"+labels+"}", func(v float64) bool { return v >= want }, fmt.Sprintf("at least %v", want), timeout)
}
