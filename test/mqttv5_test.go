package test

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// closedBecause picks a closed channel with reason.
func closedBecause(reason presence.Reason) func([]presence.Channel) *presence.Channel {
	return func(chs []presence.Channel) *presence.Channel {
		for i := range chs {
			if !chs[i].Open && chs[i].Reason == reason {
				return &chs[i]
			}
		}
		return nil
	}
}

// TestMosquittoClientsV5: mosquitto_pub and mosquitto_sub with -V 5 (MQTT
// 5.0) publish at QoS 0, 1 and 2 with properties, and receive the retained
// messages with the user properties and content type forwarded
// [MQTT-3.3.2-17], [MQTT-3.3.2-20]; their channels close with reason
// client_disconnect.
func TestMosquittoClientsV5(t *testing.T) {
	pub, sub := requireProgram(t, "mosquitto_pub"), requireProgram(t, "mosquitto_sub")
	p := startServe(t, pgtest.URL(t))
	host, port, err := net.SplitHostPort(p.MQTTAddr)
	if err != nil {
		t.Fatal(err)
	}
	run := func(tool string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, tool, append([]string{"-V", "5", "-h", host, "-p", port}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", tool, args, err, out)
		}
		return string(out)
	}
	for _, qos := range []string{"0", "1", "2"} {
		run(pub, "-i", "v5-pub-"+qos, "-t", "v5/q"+qos, "-q", qos, "-r", "-m", "message "+qos,
			"-D", "publish", "user-property", "origin", "mosquitto", "-D", "publish", "content-type", "text/plain")
	}
	out := run(sub, "-i", "v5-sub", "-t", "v5/#", "-q", "2", "-C", "3", "-W", "20", "-F", "%t|%p|%C|%P")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("mosquitto_sub printed %q, want 3 messages", out)
	}
	for _, qos := range []string{"0", "1", "2"} {
		want := "v5/q" + qos + "|message " + qos + "|text/plain|origin:mosquitto"
		found := false
		for _, l := range lines {
			found = found || l == want
		}
		if !found {
			t.Fatalf("mosquitto_sub printed %q, want a line %q", out, want)
		}
	}
	for _, id := range []string{"v5-sub", "v5-pub-2"} {
		ch := waitChannel(t, p.HTTPAddr, id, "a channel closed by DISCONNECT", closedBecause(presence.ReasonClientDisconnect))
		// The history keeps the level and the DISCONNECT's reason code
		// (0x00, normal disconnection) beside presenced's reason.
		if ch.ProtocolLevel != 5 || ch.ReasonCode == nil || *ch.ReasonCode != 0 {
			t.Errorf("%s: protocol level %d, reason code %v; want 5 and 0x00", id, ch.ProtocolLevel, ch.ReasonCode)
		}
	}
	// A 3.1.1 client: level 4, no reason code.
	run3 := exec.Command(pub, "-V", "mqttv311", "-h", host, "-p", port, "-i", "v4-pub", "-t", "v4/t", "-m", "x")
	if out, err := run3.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub -V mqttv311: %v\n%s", err, out)
	}
	ch := waitChannel(t, p.HTTPAddr, "v4-pub", "the 3.1.1 channel closed", closedBecause(presence.ReasonClientDisconnect))
	if ch.ProtocolLevel != 4 || ch.ReasonCode != nil {
		t.Errorf("3.1.1 channel: protocol level %d, reason code %v; want 4 and none", ch.ProtocolLevel, ch.ReasonCode)
	}
}

// TestMQTTJSV5: MQTT.js with protocolVersion 5 connects over TCP and over
// WebSocket, gets the broker's CONNACK properties, round-trips a QoS 1
// message with its properties, and ends with a DISCONNECT.
func TestMQTTJSV5(t *testing.T) {
	dir := mqttjsDir(t)
	wsAddr := freeAddr(t)
	p := startServe(t, pgtest.URL(t), "--mqtt-ws-addr", wsAddr)
	for _, tt := range []struct{ name, url, clientID string }{
		{"tcp", "mqtt://" + p.MQTTAddr, "js-v5-tcp"},
		{"websocket", "ws://" + wsAddr + "/mqtt", "js-v5-ws"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			js := startMQTTJS(t, ctx, dir, "client.js", tt.url, tt.clientID, "5")
			stdin, lines, stderr := js.stdin, js.lines, js.stderr
			var connack string
			for ready := false; !ready; {
				if !lines.Scan() {
					t.Fatalf("mqtt.js ended before ready: %v\n%s", lines.Err(), stderr)
				}
				switch line := lines.Text(); {
				case line == "ready":
					ready = true
				case strings.HasPrefix(line, "connack "):
					connack = line
				case strings.HasPrefix(line, "error"):
					t.Fatalf("mqtt.js: %s\n%s", line, stderr)
				}
			}
			if !strings.Contains(connack, `"maximumPacketSize"`) || !strings.Contains(connack, `"topicAliasMaximum"`) {
				t.Fatalf("CONNACK properties %s, want the broker's limits", connack)
			}
			waitChannel(t, p.HTTPAddr, tt.clientID, "an open channel", openFrom("127.0.0.1"))
			stdin.Close() // the script ends with DISCONNECT
			if err := js.wait(); err != nil {
				t.Fatalf("mqtt.js exited: %v\n%s", err, stderr)
			}
			waitChannel(t, p.HTTPAddr, tt.clientID, "the channel closed by DISCONNECT", closedBecause(presence.ReasonClientDisconnect))
		})
	}
}

// TestMQTTSWithMosquittoClientsV5: MQTT 5.0 over the TLS listener: a
// retained QoS 2 message with a user property published by
// mosquitto_pub -V 5 reaches mosquitto_sub -V 5, property included; and
// the session expiry interval (-x) keeps the subscriber's session, so it
// reconnects to session present and gets what was published meanwhile
// [MQTT-3.1.2-23].
func TestMQTTSWithMosquittoClientsV5(t *testing.T) {
	ca := newPKI(t, "server")
	s := startTLSServe(t, ca)
	run := func(tool string, args ...string) string {
		t.Helper()
		out, err := s.mosquitto(t, tool, append([]string{"-V", "5", "--cafile", ca.CAFile}, args...)...)
		if err != nil {
			t.Fatalf("%s %v over TLS: %v\n%s\n%s", tool, args, err, out, s.logs)
		}
		return strings.TrimSpace(string(out))
	}
	run("mosquitto_pub", "-i", "tls5-pub", "-t", "tls5/hello", "-r", "-q", "2", "-m", "over tls, v5",
		"-D", "publish", "user-property", "via", "tls")
	if out := run("mosquitto_sub", "-i", "tls5-sub", "-t", "tls5/hello", "-q", "1", "-C", "1", "-W", "10", "-F", "%p|%P"); out != "over tls, v5|via:tls" {
		t.Fatalf("mosquitto_sub printed %q", out)
	}

	// A persistent v5 session: subscribe with -c -x 300 and leave once the
	// SUBACK is in (-E), get a message queued, come back.
	run("mosquitto_sub", "-i", "tls5-keeper", "-c", "-x", "300", "-t", "tls5/queue", "-q", "1", "-E")
	run("mosquitto_pub", "-i", "tls5-pub2", "-t", "tls5/queue", "-q", "1", "-m", "while away")
	if out := run("mosquitto_sub", "-i", "tls5-keeper", "-c", "-x", "300", "-t", "tls5/queue", "-q", "1", "-C", "1", "-W", "10", "-F", "%p"); out != "while away" {
		t.Fatalf("resumed v5 session printed %q, want the queued message", out)
	}
}
