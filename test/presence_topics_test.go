package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// presenceMessage is the body of a $SYS/presence message, both kinds.
type presenceMessage struct {
	ClientID, ChannelID, Node, ClientIP, Reason string
	Time                                        int64
	Keepalive                                   int
	CleanSession, DisconnectSent                bool
	ProtocolLevel                               int
}

// TestPresenceOnMQTTTopics: presenced serve --mqtt-presence-topics with an
// ACL: a subscriber granted $SYS/presence receives the connect and the
// close of another client, the same channel the store records; a client
// the ACL does not grant is refused (SUBACK 0x80).
func TestPresenceOnMQTTTopics(t *testing.T) {
	acl := filepath.Join(t.TempDir(), "acl")
	if err := os.WriteFile(acl, []byte("user watcher\ntopic read $SYS/presence/#\nuser device\ntopic readwrite #\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dbURL := pgtest.URL(t)
	// Anonymous access is allowed on loopback, so user names are taken as
	// given (no password file): enough to pick the ACL's rules.
	p := startServe(t, dbURL, "--mqtt-presence-topics", "--mqtt-acl-file", acl)

	connect := func(clientID, user string) mqtt.Client {
		t.Helper()
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + p.MQTTAddr).SetClientID(clientID).
			SetUsername(user).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("paho connect %q: %v", clientID, tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(0) })
		return c
	}
	subscribe := func(c mqtt.Client, filter string, got chan<- mqtt.Message) byte {
		t.Helper()
		tok := c.Subscribe(filter, 0, func(_ mqtt.Client, m mqtt.Message) { got <- m })
		if !tok.WaitTimeout(10 * time.Second) {
			t.Fatalf("no SUBACK for %s", filter)
		}
		return tok.(*mqtt.SubscribeToken).Result()[filter]
	}
	next := func(got <-chan mqtt.Message, topic string) presenceMessage {
		t.Helper()
		select {
		case m := <-got:
			var body presenceMessage
			if err := json.Unmarshal(m.Payload(), &body); err != nil || m.Topic() != topic || m.Retained() {
				t.Fatalf("got %s %s (retained %t, %v), want %s", m.Topic(), m.Payload(), m.Retained(), err, topic)
			}
			return body
		case <-time.After(10 * time.Second):
			t.Fatalf("no message on %s\n%s", topic, p.logs)
			return presenceMessage{}
		}
	}

	watcher := connect("watcher-1", "watcher")
	watched := make(chan mqtt.Message, 16)
	for _, filter := range []string{"$SYS/presence/+/connected", "$SYS/presence/+/disconnected"} {
		if code := subscribe(watcher, filter, watched); code != 0 {
			t.Fatalf("watcher: SUBACK %#x for %s, want 0", code, filter)
		}
	}
	if code := subscribe(connect("nosy", "device"), "$SYS/presence/+/connected", make(chan mqtt.Message, 1)); code != 0x80 {
		t.Fatalf("device: SUBACK %#x for $SYS/presence, want 0x80", code)
	}
	// The watcher sees nosy connect too.
	next(watched, "$SYS/presence/nosy/connected")

	const id = "GID_topics@@@dev-1"
	conn, ack := rawConnect(t, p.MQTTAddr, id, 60)
	if ack != 0 {
		t.Fatalf("CONNACK %d", ack)
	}
	connected := next(watched, "$SYS/presence/"+id+"/connected")
	stored := waitStoredEvents(t, dbURL, id, 1)
	if connected.ClientID != id || connected.ChannelID != stored[0].ChannelID || connected.Node != p.Node ||
		connected.ClientIP == "" || connected.Time == 0 || connected.Keepalive != 60 || !connected.CleanSession || connected.ProtocolLevel != 4 {
		t.Fatalf("connected %+v, want channel %s of node %s", connected, stored[0].ChannelID, p.Node)
	}

	if _, err := conn.Write(disconnectPacket); err != nil {
		t.Fatal(err)
	}
	gone := next(watched, "$SYS/presence/"+id+"/disconnected")
	if gone.ChannelID != connected.ChannelID || gone.Reason != "client_disconnect" || !gone.DisconnectSent || gone.Time < connected.Time {
		t.Fatalf("disconnected %+v, want channel %s closed with DISCONNECT", gone, connected.ChannelID)
	}
	if v, ok, err := metricValue(p.HTTPAddr, "presenced_mqtt_presence_messages_total"); !ok || err != nil || v < 3 {
		t.Fatalf("presenced_mqtt_presence_messages_total %v (%t, %v), want at least 3", v, ok, err)
	}
}
