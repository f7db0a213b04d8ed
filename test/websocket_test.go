package test

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// openFrom picks the open channel of a client whose address is on ip.
func openFrom(ip string) func([]presence.Channel) *presence.Channel {
	return func(chs []presence.Channel) *presence.Channel {
		for i := range chs {
			if chs[i].Open && strings.HasPrefix(chs[i].ClientIP, ip+":") {
				return &chs[i]
			}
		}
		return nil
	}
}

// closedWith picks the channel id's channel once it is closed.
func closedWith(channelID string) func([]presence.Channel) *presence.Channel {
	return func(chs []presence.Channel) *presence.Channel {
		for i := range chs {
			if chs[i].ChannelID == channelID && !chs[i].Open {
				return &chs[i]
			}
		}
		return nil
	}
}

func TestPahoOverWebSocket(t *testing.T) {
	wsAddr := freeAddr(t)
	p := startServe(t, pgtest.URL(t), "--mqtt-ws-addr", wsAddr)

	received := make(chan string, 1)
	opts := mqtt.NewClientOptions().AddBroker("ws://" + wsAddr + "/mqtt").SetClientID("ws-paho").
		SetKeepAlive(30 * time.Second).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second)
	client := mqtt.NewClient(opts)
	if tok := client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("paho connect over ws: %v", tok.Error())
	}
	defer client.Disconnect(0)
	if tok := client.Subscribe("ws/paho", 1, func(_ mqtt.Client, m mqtt.Message) { received <- string(m.Payload()) }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	if tok := client.Publish("ws/paho", 1, false, "over websocket"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	select {
	case m := <-received:
		if m != "over websocket" {
			t.Fatalf("received %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("own message never came back")
	}
	ch := waitChannel(t, p.HTTPAddr, "ws-paho", "an open channel from 127.0.0.1", openFrom("127.0.0.1"))
	client.Disconnect(100)
	closed := waitChannel(t, p.HTTPAddr, "ws-paho", "the channel closed", closedWith(ch.ChannelID))
	if closed.Reason != presence.ReasonClientDisconnect {
		t.Fatalf("closed %+v, want reason client_disconnect", closed)
	}

	// A handshake without the mqtt subprotocol is refused with a clear 400.
	req, _ := http.NewRequest("GET", "http://"+wsAddr+"/mqtt", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "mqtt") {
		t.Fatalf("handshake without subprotocol: %d %q", resp.StatusCode, body)
	}
	p.waitMetricLabels("presenced_mqtt_ws_handshakes_total", `result="failed"`, 1, 10*time.Second)
	p.waitMetricLabels("presenced_mqtt_ws_handshakes_total", `result="accepted"`, 1, 10*time.Second)
}

// mqttjsOnce installs test/mqttjs's pinned MQTT.js (npm ci) once per run.
var mqttjsOnce struct {
	sync.Once
	err error
}

// mqttjsDir returns test/mqttjs with its node_modules installed.
func mqttjsDir(t *testing.T) string {
	t.Helper()
	requireProgram(t, "node")
	npm := requireProgram(t, "npm")
	dir, err := filepath.Abs("mqttjs")
	if err != nil {
		t.Fatal(err)
	}
	mqttjsOnce.Do(func() {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "mqtt", "package.json")); err == nil {
			return // installed by an earlier run (npm ci would reinstall it all)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			mqttjsOnce.err = err
			t.Logf("npm ci in %s: %s", dir, out)
		}
	})
	if mqttjsOnce.err != nil {
		t.Fatalf("npm ci in %s: %v", dir, mqttjsOnce.err)
	}
	return dir
}

// mqttjsProcess is a script of test/mqttjs running under node: its stdin,
// its stdout line by line and its stderr (for failure messages).
type mqttjsProcess struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  *bufio.Scanner
	stderr *syncBuffer
}

// startMQTTJS runs node script args… in dir until ctx ends or the test does.
func startMQTTJS(t *testing.T, ctx context.Context, dir, script string, args ...string) *mqttjsProcess {
	t.Helper()
	cmd := exec.CommandContext(ctx, "node", append([]string{script}, args...)...)
	cmd.Dir = dir
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return &mqttjsProcess{cmd: cmd, stdin: stdin, lines: bufio.NewScanner(stdout), stderr: stderr}
}

// wait waits for the script to end and returns how it ended.
func (p *mqttjsProcess) wait() error { return p.cmd.Wait() }

func TestMQTTJSOverWebSocket(t *testing.T) {
	dir := mqttjsDir(t)
	wsAddr := freeAddr(t)
	p := startServe(t, pgtest.URL(t), "--mqtt-ws-addr", wsAddr)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js := startMQTTJS(t, ctx, dir, "client.js", "ws://"+wsAddr+"/mqtt", "ws-mqttjs")
	stdin, lines, stderr := js.stdin, js.lines, js.stderr
	for ready := false; !ready; {
		if !lines.Scan() {
			t.Fatalf("mqtt.js ended before ready: %v\n%s", lines.Err(), stderr)
		}
		switch line := lines.Text(); {
		case line == "ready":
			ready = true
		case strings.HasPrefix(line, "error"):
			t.Fatalf("mqtt.js: %s\n%s", line, stderr)
		}
	}
	ch := waitChannel(t, p.HTTPAddr, "ws-mqttjs", "an open channel from 127.0.0.1", openFrom("127.0.0.1"))
	stdin.Close() // the script ends with DISCONNECT
	if err := js.wait(); err != nil {
		t.Fatalf("mqtt.js exited: %v\n%s", err, stderr)
	}
	closed := waitChannel(t, p.HTTPAddr, "ws-mqttjs", "the channel closed", closedWith(ch.ChannelID))
	if closed.Reason != presence.ReasonClientDisconnect {
		t.Fatalf("closed %+v, want reason client_disconnect", closed)
	}
}

// pahoWSS connects paho.mqtt.golang over wss://.
func pahoWSS(t *testing.T, addr, clientID string, conf *tls.Config) (mqtt.Client, error) {
	t.Helper()
	return pahoSecure(t, "wss://"+addr+"/mqtt", clientID, conf)
}

// clientCert loads a client certificate of ca for cn.
func clientCert(t *testing.T, ca *pki, cn string) tls.Certificate {
	t.Helper()
	certFile, keyFile := ca.issue(cn, false)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// paho.mqtt.golang over wss:// with mutual TLS: a round trip, the
// channel's clientIp is the client's, the connect event is in the API; a
// client certificate of another CA fails the handshake.
func TestPahoOverSecureWebSocket(t *testing.T) {
	serverCA, clientCA, otherCA := newPKI(t, "server"), newPKI(t, "client"), newPKI(t, "other")
	certFile, keyFile := serverCA.issue("broker", true)
	wssAddr := freeAddr(t)
	p := startServe(t, pgtest.URL(t), "--mqtt-wss-addr", wssAddr, "--mqtt-tls-cert", certFile, "--mqtt-tls-key", keyFile,
		"--mqtt-tls-client-ca", clientCA.CAFile, "--mqtt-tls-identity", "cn")
	client, err := pahoWSS(t, wssAddr, "GID_wss@@@dev-3", &tls.Config{RootCAs: serverCA.pool,
		Certificates: []tls.Certificate{clientCert(t, clientCA, "dev-3")}})
	if err != nil {
		t.Fatalf("paho over wss://: %v\n%s", err, p.logs)
	}
	roundTrip(t, client, "wss/dev-3")
	waitChannel(t, p.HTTPAddr, "GID_wss@@@dev-3", "an open channel from 127.0.0.1", openFrom("127.0.0.1"))
	var events struct {
		Items []presence.StoredEvent `json:"items"`
	}
	p.getJSON("/clients/GID_wss@@@dev-3/events", &events)
	if len(events.Items) == 0 || events.Items[0].Type != presence.EventConnect || events.Items[0].Username != "dev-3" ||
		!strings.HasPrefix(events.Items[0].ClientIP, "127.0.0.1:") {
		t.Fatalf("events %+v, want a connect from 127.0.0.1 with the CN dev-3 as user name", events.Items)
	}

	if _, err := pahoWSS(t, wssAddr, "GID_wss@@@intruder", &tls.Config{RootCAs: serverCA.pool,
		Certificates: []tls.Certificate{clientCert(t, otherCA, "dev-3")}}); err == nil {
		t.Fatal("paho with a client certificate of another CA connected over wss://")
	}
	p.waitMetricLabels("presenced_mqtt_wss_handshakes_total", `result="failed"`, 1, 10*time.Second)
	p.waitMetricLabels("presenced_mqtt_wss_handshakes_total", `result="accepted"`, 1, 10*time.Second)
}

// The connect event of a wss connection carries tlsVersion and the client
// subject, as one of MQTT over TLS does: seen in the events "presenced
// broker" sends to RocketMQ.
func TestSecureWebSocketConnectEventRecordsTLS(t *testing.T) {
	serverCA, clientCA := newPKI(t, "server"), newPKI(t, "client")
	wssAddr, b, fake := startTLSBroker(t, "--mqtt-wss-addr", "presenced_wss_events", serverCA, clientCA)
	if _, err := pahoWSS(t, wssAddr, "GID_wss@@@dev-4", &tls.Config{RootCAs: serverCA.pool,
		Certificates: []tls.Certificate{clientCert(t, clientCA, "dev-4")}, MaxVersion: tls.VersionTLS12}); err != nil {
		t.Fatalf("paho over wss:// with TLS 1.2: %v\n%s", err, b.logs)
	}
	body, e := waitConnectEvent(t, fake, "presenced_wss_events", "GID_wss@@@dev-4", b)
	if e.TLSVersion != "TLS 1.2" || e.TLSClientSubject != "CN=dev-4" || !strings.HasPrefix(e.ClientIP, "127.0.0.1:") {
		t.Fatalf("connect event %s: want tlsVersion TLS 1.2, tlsClientSubject CN=dev-4, clientIp 127.0.0.1:…", body)
	}
}
