package mqttbroker

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/presenced/presenced/presence"
)

// watchPresence connects a client that subscribes to filters at QoS 1
// (presence messages still come at QoS 0) and asserts the SUBACK codes
// want.
func watchPresence(t *testing.T, srv *testServer, clientID string, want []byte, filters ...string) *rawClient {
	t.Helper()
	w := connectOK(t, srv.addr, clientID)
	if codes := w.subscribe(1, 1, filters...); !bytes.Equal(codes, want) {
		t.Fatalf("SUBACK %v for %v, want %v", codes, filters, want)
	}
	// The broker sends the retained messages of a subscription after its
	// SUBACK; a PINGRESP proves it has finished, so that a retained
	// message stored from now on cannot come as a second, retained copy.
	w.send(&emptyPacket{Type: typePingreq})
	w.expect(typePingresp)
	return w
}

// receivePresence reads the next PUBLISH, asserts it is a QoS 0,
// non-retained message on topic, and decodes its JSON body.
func (c *rawClient) receivePresence(topic string) map[string]any {
	c.t.Helper()
	p := c.receive(false)
	if p.Topic != topic || p.QoS != 0 || p.Retain {
		c.t.Fatalf("got PUBLISH %q qos %d retain %t (%s), want %q at QoS 0, not retained", p.Topic, p.QoS, p.Retain, p.Payload, topic)
	}
	var body map[string]any
	if err := json.Unmarshal(p.Payload, &body); err != nil {
		c.t.Fatalf("presence message %q: %v", p.Payload, err)
	}
	return body
}

// eventOf returns the event of type typ of clientID, waiting for it.
func (r *recorder) eventOf(t *testing.T, clientID string, typ presence.EventType) presence.Event {
	t.Helper()
	var found presence.Event
	r.waitFor(t, string(typ)+" of "+clientID, func(events []presence.Event) bool {
		for _, e := range events {
			if e.ClientID == clientID && e.Type == typ {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

// assertFields fails the test unless body has exactly the fields want (JSON
// numbers as float64).
func assertFields(t *testing.T, body, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if body[k] != v {
			t.Errorf("%s = %#v, want %#v (body %v)", k, body[k], v, body)
		}
	}
	for k := range body {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected field %s = %#v", k, body[k])
		}
	}
}

// TestPresenceTopicsConnectAndClose: a subscriber to the presence topics
// sees a client connect and go away, with the connect's details (never
// its password) and the close reason; a '#' subscriber sees none of it
// [MQTT-4.7.2-1].
func TestPresenceTopicsConnectAndClose(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true, PresenceTopics: true})
	hash := connectOK(t, srv.addr, "hash")
	hash.retainBarrier()
	if codes := hash.subscribe(1, 0, "#"); !bytes.Equal(codes, []byte{0}) {
		t.Fatalf("SUBACK %v for #", codes)
	}
	hash.expect(typePublish) // the retained barrier
	w := watchPresence(t, srv, "watcher", []byte{1, 1}, "$SYS/presence/+/connected", "$SYS/presence/+/disconnected")

	dev := connectAs(t, srv.addr, connectPacket{ClientID: "dev-1", CleanSession: true, Keepalive: 30,
		HasUsername: true, Username: "alice", HasPassword: true, Password: []byte("s3cret")}, false)
	connect := srv.rec.eventOf(t, "dev-1", presence.EventConnect)
	p := w.receive(false)
	if bytes.Contains(p.Payload, []byte("s3cret")) {
		t.Fatalf("presence message shows the password: %s", p.Payload)
	}
	var body map[string]any
	if err := json.Unmarshal(p.Payload, &body); err != nil || p.Topic != "$SYS/presence/dev-1/connected" {
		t.Fatalf("got %q %s (%v)", p.Topic, p.Payload, err)
	}
	assertFields(t, body, map[string]any{
		"clientId": "dev-1", "channelId": connect.ChannelID, "node": "test-node", "clientIp": connect.ClientIP,
		"username": "alice", "time": float64(connect.Time), "keepalive": float64(30), "cleanSession": true,
		"protocolLevel": float64(4),
	})

	dev.send(&emptyPacket{Type: typeDisconnect})
	closed := srv.rec.waitTCPClean(t, "dev-1")
	assertFields(t, w.receivePresence("$SYS/presence/dev-1/disconnected"), map[string]any{
		"clientId": "dev-1", "channelId": connect.ChannelID, "node": "test-node", "clientIp": connect.ClientIP,
		"time": float64(closed.Time), "reason": "client_disconnect", "disconnectSent": true,
	})

	// A client id with '/' stays one topic level; one that closes its
	// socket has sent no DISCONNECT.
	odd := connectOK(t, srv.addr, "a/b%c")
	w.receivePresence("$SYS/presence/a%2Fb%25c/connected")
	odd.nc.Close()
	body = w.receivePresence("$SYS/presence/a%2Fb%25c/disconnected")
	if body["clientId"] != "a/b%c" || body["reason"] != "client_closed" || body["disconnectSent"] != false {
		t.Fatalf("disconnected %v", body)
	}

	// Every presence message has reached every subscriber once the
	// connection is forgotten (after publishDisconnected); the barrier then
	// shows hash got none of them.
	waitUntil(t, "the closed clients to finish", func() bool { return srv.Stats().Connections == 2 })
	hash.barrier(0)
	if n := srv.Stats().PresenceMessages; n != 4 {
		t.Fatalf("PresenceMessages %d, want 4", n)
	}
}

// TestPresenceTopicsTakeover: a takeover publishes the new connection's
// connected, then the old one's disconnected naming it.
func TestPresenceTopicsTakeover(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true, PresenceTopics: true})
	w := watchPresence(t, srv, "watcher", []byte{1}, "$SYS/presence/twin/#")
	old := connectOK(t, srv.addr, "twin")
	first := w.receivePresence("$SYS/presence/twin/connected")
	connectOK(t, srv.addr, "twin")
	old.expectClosed()

	second := w.receivePresence("$SYS/presence/twin/connected")
	gone := w.receivePresence("$SYS/presence/twin/disconnected")
	if second["channelId"] == first["channelId"] {
		t.Fatalf("the takeover's connected names the old channel: %v", second)
	}
	if gone["channelId"] != first["channelId"] || gone["reason"] != string(presence.ReasonTakeover) ||
		gone["takeoverBy"] != second["channelId"] || gone["disconnectSent"] != false {
		t.Fatalf("disconnected %v, want the old channel %v taken over by %v", gone, first["channelId"], second["channelId"])
	}
}

// TestPresenceTopicsKick: an operator's close is published with its
// reason, api_disconnect.
func TestPresenceTopicsKick(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true, PresenceTopics: true})
	w := watchPresence(t, srv, "watcher", []byte{1}, "$SYS/presence/dev-1/#")
	connectOK(t, srv.addr, "dev-1")
	connected := w.receivePresence("$SYS/presence/dev-1/connected")
	if _, ok, err := srv.Kick(context.Background(), "dev-1", false); !ok || err != nil {
		t.Fatalf("Kick: %t %v", ok, err)
	}
	gone := w.receivePresence("$SYS/presence/dev-1/disconnected")
	if gone["channelId"] != connected["channelId"] || gone["reason"] != string(presence.ReasonAPIDisconnect) {
		t.Fatalf("disconnected %v, want channel %v closed as api_disconnect", gone, connected["channelId"])
	}
}

// TestPresenceTopicsCannotBeForged: whether presence topics are on or
// off, no client may publish below $SYS/presence, retained or not, nor
// leave a will there.
func TestPresenceTopicsCannotBeForged(t *testing.T) {
	for _, on := range []bool{true, false} {
		srv := startServer(t, Config{AllowAnonymous: true, PresenceTopics: on})
		w := watchPresence(t, srv, "watcher", []byte{1}, "$SYS/presence/#")
		forger := connectOK(t, srv.addr, "forger")
		published := int64(0)
		if on {
			w.receivePresence("$SYS/presence/forger/connected")
			published = 1
		}
		forger.publish(&publishPacket{Topic: "$SYS/presence/x/connected", Payload: []byte(`{"clientId":"x"}`), QoS: 1, Retain: true})
		forger.publish(&publishPacket{Topic: "$SYS/presence", Payload: []byte("x")})
		forger.publish(&publishPacket{Topic: "$SYS/presence/x/disconnected", Payload: []byte("x"), QoS: 2, ID: 2})
		willer := dial(t, srv.addr)
		ack := willer.connect(&connectPacket{ClientID: "willer", CleanSession: true,
			Will: &willMessage{Topic: "$SYS/presence/x/disconnected", Payload: []byte("x")}})
		if ack.ReturnCode != connRefusedNotAuth {
			t.Fatalf("CONNACK %d for a will on a presence topic, want 5", ack.ReturnCode)
		}

		// Routed before its PUBACK, a forged message would come before the
		// barrier (barrierTopic is not below $SYS/presence).
		forger.retainBarrier()
		w.barrier(0)
		st := srv.Stats()
		if st.PresenceForged != 4 || st.RetainedMessages != 1 || st.PresenceMessages != published {
			t.Fatalf("presence topics %t: forged %d, retained %d, published %d; want 4, 1 (the barrier), %d",
				on, st.PresenceForged, st.RetainedMessages, st.PresenceMessages, published)
		}
	}
}

// readOnlyAuthorizer grants every publish and only the listed
// subscription filters, as an ACL without a $SYS/presence rule would.
type readOnlyAuthorizer []string

func (readOnlyAuthorizer) CanPublish(clientID, username, topic string) bool { return true }
func (a readOnlyAuthorizer) CanSubscribe(clientID, username, filter string) bool {
	for _, f := range a {
		if f == filter {
			return true
		}
	}
	return false
}

// TestPresenceTopicsNeedReadAccess: with an Authorizer that does not grant
// the presence topics the subscription is refused (SUBACK 0x80) and
// nothing is delivered.
func TestPresenceTopicsNeedReadAccess(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true, PresenceTopics: true,
		Authorizer: readOnlyAuthorizer{"#", barrierTopic}})
	w := watchPresence(t, srv, "watcher", []byte{subackFailure, subackFailure, 1},
		"$SYS/presence/+/connected", "$SYS/#", "#")
	dev := connectOK(t, srv.addr, "dev-1")
	dev.retainBarrier()
	w.expect(typePublish) // the barrier, live on '#'
	dev.nc.Close()
	srv.rec.waitTCPClean(t, "dev-1")
	waitUntil(t, "dev-1 to finish", func() bool { return srv.Stats().Connections == 1 })
	w.barrier(0)
	if st := srv.Stats(); st.DeniedSubscribes != 2 || st.PresenceMessages != 0 {
		t.Fatalf("denied subscribes %d, presence messages %d; want 2, 0", st.DeniedSubscribes, st.PresenceMessages)
	}
}

// TestPresenceTopicsOff: with the switch off nothing is published, even to
// a granted subscription.
func TestPresenceTopicsOff(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true})
	w := watchPresence(t, srv, "watcher", []byte{1}, "$SYS/presence/#")
	dev := connectOK(t, srv.addr, "dev-1")
	dev.retainBarrier()
	dev.send(&emptyPacket{Type: typeDisconnect})
	srv.rec.waitTCPClean(t, "dev-1")
	waitUntil(t, "dev-1 to finish", func() bool { return srv.Stats().Connections == 1 })
	w.barrier(0)
	if n := srv.Stats().PresenceMessages; n != 0 {
		t.Fatalf("PresenceMessages %d, want 0", n)
	}
}

func TestPresenceTopicNames(t *testing.T) {
	for _, tc := range []struct {
		topic    string
		reserved bool
	}{
		{"$SYS/presence", true},
		{"$SYS/presence/", true},
		{"$SYS/presence/dev/connected", true},
		{"$SYS/presences", false},
		{"$SYS/broker/uptime", false},
		{"presence/dev/connected", false},
		{"x/$SYS/presence", false},
	} {
		if got := isPresenceTopic(tc.topic); got != tc.reserved {
			t.Errorf("isPresenceTopic(%q) = %t, want %t", tc.topic, got, tc.reserved)
		}
	}
	for id, want := range map[string]string{
		"GID_x@@@dev-1": "$SYS/presence/GID_x@@@dev-1/connected",
		"a/b":           "$SYS/presence/a%2Fb/connected",
		"100%":          "$SYS/presence/100%25/connected",
		"/":             "$SYS/presence/%2F/connected",
	} {
		got := presenceTopic(id, "connected")
		if got != want || strings.Count(got, "/") != 3 {
			t.Errorf("presenceTopic(%q) = %q, want %q", id, got, want)
		}
	}
}
