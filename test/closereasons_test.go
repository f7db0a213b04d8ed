package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// closeReasonTimeout bounds every wait of these tests: a stuck test fails,
// no outcome depends on how fast the machine is.
const closeReasonTimeout = 10 * time.Second

// publishQoS3Packet is a PUBLISH with both QoS bits set, topic "a" and
// packet id 1: malformed [MQTT-3.3.1-4].
var publishQoS3Packet = []byte{0x36, 0x05, 0x00, 0x01, 'a', 0x00, 0x01}

// TestCloseReasons ends a real connection in each way a client or the
// broker can end one and checks the reason the API reports for that
// channel, once its tcpclean is stored. The cases share one presenced;
// shutdown, which stops it, comes last.
func TestCloseReasons(t *testing.T) {
	p := startServe(t, pgtest.URL(t))
	httpAddr := p.HTTPAddr

	tests := []struct {
		name      string
		keepalive uint16
		end       func(t *testing.T, conn net.Conn)
		want      presence.Reason
	}{
		{"FIN without DISCONNECT", 60, func(t *testing.T, conn net.Conn) {
			conn.Close() // nothing unread is pending, so the kernel sends a FIN
		}, presence.ReasonClientClosed},
		{"RST", 60, func(t *testing.T, conn net.Conn) {
			abortClose(conn) // SO_LINGER 0, then close
		}, presence.ReasonClientClosed},
		{"DISCONNECT", 60, func(t *testing.T, conn net.Conn) {
			mustWrite(t, conn, disconnectPacket)
			waitClosed(t, conn, closeReasonTimeout) // [MQTT-3.14.4-1] the server closes
		}, presence.ReasonClientDisconnect},
		{"keepalive expiry", 1, func(t *testing.T, conn net.Conn) {
			// Silence: closed after 1.5 × keepalive [MQTT-3.1.2-24].
			waitClosed(t, conn, closeReasonTimeout)
		}, presence.ReasonKeepaliveTimeout},
		{"protocol error", 60, func(t *testing.T, conn net.Conn) {
			mustWrite(t, conn, publishQoS3Packet)
			waitClosed(t, conn, closeReasonTimeout)
		}, presence.ReasonProtocolError},
	}
	t.Run("group", func(t *testing.T) {
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				clientID := fmt.Sprintf("GID_close@@@case-%d", i)
				conn, code := rawConnect(t, p.MQTTAddr, clientID, tt.keepalive)
				if code != 0 {
					t.Fatalf("CONNACK code %d", code)
				}
				local := conn.LocalAddr().String()
				tt.end(t, conn)
				ch := waitChannel(t, httpAddr, clientID, "the tcpclean of "+local, func(cs []presence.Channel) *presence.Channel {
					if c := channelFrom(cs, local); c != nil && c.TCPCleanAt != nil {
						return c
					}
					return nil
				})
				if ch.Reason != tt.want || ch.Open {
					t.Fatalf("channel %+v: reason %q open %t, want reason %q and closed", ch, ch.Reason, ch.Open, tt.want)
				}
			})
		}
		t.Run("takeover", func(t *testing.T) {
			t.Parallel()
			const clientID = "GID_close@@@takeover"
			old, code := rawConnect(t, p.MQTTAddr, clientID, 60)
			if code != 0 {
				t.Fatalf("CONNACK code %d", code)
			}
			successor, code := rawConnect(t, p.MQTTAddr, clientID, 60)
			if code != 0 {
				t.Fatalf("second CONNACK code %d", code)
			}
			waitClosed(t, old, closeReasonTimeout) // [MQTT-3.1.4-2]
			oldAddr, newAddr := old.LocalAddr().String(), successor.LocalAddr().String()
			var newChannel *presence.Channel
			oldChannel := waitChannel(t, httpAddr, clientID, "the takeover of "+oldAddr+" by "+newAddr, func(cs []presence.Channel) *presence.Channel {
				o, n := channelFrom(cs, oldAddr), channelFrom(cs, newAddr)
				if o == nil || o.TCPCleanAt == nil || n == nil {
					return nil
				}
				newChannel = n
				return o
			})
			if oldChannel.Reason != presence.ReasonTakeover || oldChannel.Open {
				t.Fatalf("old channel %+v: reason %q open %t, want reason takeover and closed", oldChannel, oldChannel.Reason, oldChannel.Open)
			}
			// The successor's socket is still connected: its channel must be open.
			if !newChannel.Open || newChannel.TCPCleanAt != nil || newChannel.Reason != "" {
				t.Fatalf("new channel %+v, want open", newChannel)
			}
		})
	})
	if t.Failed() {
		return
	}
	checkServerShutdown(t, p)
}

// checkServerShutdown stops p with SIGTERM while a client is connected,
// restarts it on the same data directory and database, and checks that the
// channel was closed for the shutdown — not left open, and not closed later
// by fencing (node_lost). It runs on the goroutine of the test that started
// p, since stop and start report to that test.
func checkServerShutdown(t *testing.T, p *proc) {
	t.Helper()
	const clientID = "GID_close@@@shutdown"
	conn, code := rawConnect(t, p.MQTTAddr, clientID, 60)
	if code != 0 {
		t.Fatalf("CONNACK code %d", code)
	}
	local := conn.LocalAddr().String()
	// Stop only once the connect is stored, so the close must come from the
	// broker's shutdown and not from a channel the store never saw open.
	waitChannel(t, p.HTTPAddr, clientID, "the connect of "+local, func(cs []presence.Channel) *presence.Channel {
		return channelFrom(cs, local)
	})
	p.stop()
	waitClosed(t, conn, closeReasonTimeout)
	p.start()
	ch := waitChannel(t, p.HTTPAddr, clientID, "the tcpclean of "+local, func(cs []presence.Channel) *presence.Channel {
		if c := channelFrom(cs, local); c != nil && c.TCPCleanAt != nil {
			return c
		}
		return nil
	})
	if ch.Reason != presence.ReasonServerShutdown || ch.Open {
		t.Fatalf("server shutdown: channel %+v: reason %q open %t, want reason server_shutdown and closed", ch, ch.Reason, ch.Open)
	}
}

// mustWrite writes b to conn.
func mustWrite(t *testing.T, conn net.Conn, b []byte) {
	t.Helper()
	_ = conn.SetWriteDeadline(time.Now().Add(closeReasonTimeout))
	if _, err := conn.Write(b); err != nil {
		t.Fatalf("write % x: %v", b, err)
	}
}

// channelFrom returns the channel whose client address is clientIP (the
// local address of the test's socket), or nil.
func channelFrom(channels []presence.Channel, clientIP string) *presence.Channel {
	for i := range channels {
		if channels[i].ClientIP == clientIP {
			return &channels[i]
		}
	}
	return nil
}

// waitChannel polls GET /clients/{clientID}/channels until match picks a
// channel, and returns it; it fails the test after closeReasonTimeout. It
// takes the subtest's t (proc's helpers report to the test that started
// the process) so that parallel subtests can use it.
func waitChannel(t *testing.T, httpAddr, clientID, what string, match func([]presence.Channel) *presence.Channel) presence.Channel {
	t.Helper()
	deadline := time.Now().Add(closeReasonTimeout)
	for {
		channels := getChannels(t, httpAddr, clientID)
		if c := match(channels); c != nil {
			return *c
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; channels of %q: %+v", closeReasonTimeout, what, clientID, channels)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// getChannels returns the channels the API reports for clientID.
func getChannels(t *testing.T, httpAddr, clientID string) []presence.Channel {
	t.Helper()
	client := http.Client{Timeout: closeReasonTimeout}
	resp, err := client.Get("http://" + httpAddr + "/clients/" + url.PathEscape(clientID) + "/channels")
	if err != nil {
		t.Fatalf("GET channels of %q: %v", clientID, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET channels of %q: %d %s %v", clientID, resp.StatusCode, body, err)
	}
	var page struct {
		Items []presence.Channel `json:"items"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatalf("GET channels of %q: decode %s: %v", clientID, body, err)
	}
	return page.Items
}
