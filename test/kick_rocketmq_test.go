package test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// kickAnswer is the body of a 202 to DELETE /clients/{id}/connection.
type kickAnswer struct {
	ClientID, ChannelID, Node, Detail string
	Acknowledged, DiscardedWill       bool
}

// startKickPath is the scale-out topology with a "presenced api" that
// kicks through RocketMQ's control topic (admin token "a1"), waiting up to
// kickWait for the evidence.
func startKickPath(t *testing.T, kickWait string) (*rmqPath, *proc) {
	t.Helper()
	name := nonTopicChars.ReplaceAllString(t.Name(), "_")
	home := t.TempDir() // the broadcasting consumer's local offsets go under $HOME
	env := []string{"HOME=" + home, "PRESENCE_ROCKETMQ_CONTROL_TOPIC=ctl_" + name, "PRESENCE_ROCKETMQ_CONTROL_GROUP=GID_ctl_" + name}
	r := startRMQPath(t, pgtest.URL(t), env...)
	adminFile := filepath.Join(t.TempDir(), "admin-tokens")
	if err := os.WriteFile(adminFile, []byte("a1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kickAPI := &proc{t: t, Command: "api", HTTPAddr: freeAddr(t), DBURL: r.dbURL, DataDir: t.TempDir(), Env: env,
		Args: []string{"--rocketmq-namesrv", r.namesrv, "--rocketmq-kick-wait", kickWait,
			"--api-admin-tokens-file", adminFile}}
	kickAPI.start()
	return r, kickAPI
}

// pahoConnectWatched connects a paho client and returns a channel closed
// when the client loses its connection.
func pahoConnectWatched(t *testing.T, addr, clientID string) (mqtt.Client, <-chan struct{}) {
	t.Helper()
	lost := make(chan struct{})
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(clientID).
		SetKeepAlive(60 * time.Second).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second).
		SetConnectionLostHandler(func(mqtt.Client, error) { close(lost) })
	client := mqtt.NewClient(opts)
	if tok := client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("paho connect %q: %v", clientID, tok.Error())
	}
	t.Cleanup(func() { client.Disconnect(0) })
	return client, lost
}

func kickPath(clientID string) string {
	return "/clients/" + url.PathEscape(clientID) + "/connection"
}

// TestKickThroughRocketMQ: presenced api finds the client's open channel
// in the store, the command reaches the broker node through the control
// topic, the node closes the connection (the paho client sees it), the
// store shows tcpclean with reason api_disconnect, and the answer says
// acknowledged. A client without an open connection is 404.
func TestKickThroughRocketMQ(t *testing.T) {
	r, kickAPI := startKickPath(t, "15s")
	const id = "GID_rkick@@@dev-1"
	_, lost := pahoConnectWatched(t, r.broker.MQTTAddr, id)
	r.api.waitOnline(id, true, 30*time.Second)

	if code, body := kickAPI.send("DELETE", kickPath(id), ""); code != http.StatusUnauthorized {
		t.Fatalf("kick without a token: %d %s, want 401", code, body)
	}
	start := time.Now()
	code, body := kickAPI.send("DELETE", kickPath(id)+"?discardWill=true", "", "Authorization", "Bearer a1")
	t.Logf("acknowledged kick answered after %v", time.Since(start))
	var kicked kickAnswer
	if err := json.Unmarshal(body, &kicked); code != http.StatusAccepted || err != nil {
		t.Fatalf("kick: %d %s", code, body)
	}
	if !kicked.Acknowledged || len(kicked.ChannelID) != 32 || kicked.Node != r.broker.Node || kicked.ClientID != id || !kicked.DiscardedWill {
		t.Fatalf("kick answered %s, want acknowledged with the channel and node %s", body, r.broker.Node)
	}
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the paho client still has its connection after the kick was acknowledged")
	}
	events := waitStoredEvents(t, r.dbURL, id, 2)
	if events[1].EventType != "tcpclean" || events[1].Reason != "api_disconnect" || events[1].ChannelID != kicked.ChannelID {
		t.Fatalf("stored %+v, want the kicked channel's tcpclean with reason api_disconnect", events)
	}
	r.broker.waitMetric(`presenced_kick_commands_total{result="kicked"}`, 1, 10*time.Second)

	for _, offline := range []string{id, "GID_rkick@@@never-connected"} {
		code, body := kickAPI.send("DELETE", kickPath(offline), "", "Authorization", "Bearer a1")
		if code != http.StatusNotFound || !strings.Contains(string(body), "not connected") {
			t.Fatalf("kick of offline %s: %d %s, want 404", offline, code, body)
		}
	}
}

// TestKickWithNoNodeActing: the broker node holding the client is killed
// (its channel stays open in the store until the node's lease runs out),
// so no node acts on the command: after the bounded wait the answer is
// 202 with acknowledged false and says no node acknowledged.
func TestKickWithNoNodeActing(t *testing.T) {
	r, kickAPI := startKickPath(t, "1500ms")
	const id = "GID_rkick@@@dev-2"
	pahoConnectWatched(t, r.broker.MQTTAddr, id)
	r.api.waitOnline(id, true, 30*time.Second)
	r.broker.kill()

	start := time.Now()
	code, body := kickAPI.send("DELETE", kickPath(id), "", "Authorization", "Bearer a1")
	var kicked kickAnswer
	if err := json.Unmarshal(body, &kicked); code != http.StatusAccepted || err != nil {
		t.Fatalf("kick: %d %s", code, body)
	}
	if kicked.Acknowledged || kicked.Node != r.broker.Node || !strings.Contains(kicked.Detail, "no node acknowledged") {
		t.Fatalf("kick answered %s, want acknowledged false naming node %s", body, r.broker.Node)
	}
	t.Logf("unacknowledged kick answered after %v", time.Since(start))
	if events := storedEvents(t, r.dbURL, id); len(events) != 1 {
		t.Fatalf("stored %+v, want the connect only", events)
	}

	// The node restarts and the client comes back on a new channel: a new
	// kick closes it, and the old command did not act on the new
	// connection (the restarted node reads from about its start time, so
	// it may see the old command again; the old channel is not one it
	// holds): exactly one connection was kicked.
	r.broker.start()
	_, lost := pahoConnectWatched(t, r.broker.MQTTAddr, id)
	waitStoredEvents(t, r.dbURL, id, 3) // the old channel fenced (node_lost), the new connect
	code, body = kickAPI.send("DELETE", kickPath(id), "", "Authorization", "Bearer a1")
	if err := json.Unmarshal(body, &kicked); code != http.StatusAccepted || err != nil || !kicked.Acknowledged {
		t.Fatalf("kick after the restart: %d %s, want acknowledged", code, body)
	}
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the paho client still has its connection after the kick was acknowledged")
	}
	r.broker.waitMetric(`presenced_kick_commands_total{result="kicked"}`, 1, 10*time.Second)
	if events := storedEvents(t, r.dbURL, id); len(events) != 4 || events[3].Reason != "api_disconnect" || events[3].ChannelID != kicked.ChannelID {
		t.Fatalf("stored %+v, want the new channel closed by the kick", events)
	}
}
