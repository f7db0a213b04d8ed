package mqttbroker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

// connectV5 connects over MQTT 5.0 and returns the client and its CONNACK.
func connectV5(t *testing.T, addr string, p connectPacket) (*rawClient, *connackPacket) {
	t.Helper()
	p.ProtocolName, p.ProtocolLevel = "MQTT", 5
	c := dial(t, addr)
	return c, c.connect(&p)
}

// connectV5OK connects clientID over MQTT 5.0 with Clean Start and asserts
// success.
func connectV5OK(t *testing.T, addr, clientID string) *rawClient {
	t.Helper()
	c, ack := connectV5(t, addr, connectPacket{ClientID: clientID, CleanSession: true})
	if ack.ReturnCode != rcSuccess || !ack.V5 {
		t.Fatalf("CONNACK %+v for %s", ack, clientID)
	}
	return c
}

// expectDisconnect reads the server's DISCONNECT, asserts its Reason Code,
// then the close [MQTT-3.14.4-1].
func (c *rawClient) expectDisconnect(code byte) {
	c.t.Helper()
	d := c.expect(typeDisconnect).(*disconnectPacket)
	if d.Reason != code {
		c.t.Fatalf("DISCONNECT reason %#02x, want %#02x", d.Reason, code)
	}
	c.expectClosed()
}

// TestV5ConnectProperties: CONNACK tells a v5 client the server's limits
// and the identifier it assigned to an empty client id [MQTT-3.2.2-16];
// 3.1.1 CONNACK stays two bytes.
func TestV5ConnectProperties(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true, MaxPacketSize: 4096, MaxUnreleasedQoS2: 7})
	c, ack := connectV5(t, srv.addr, connectPacket{CleanSession: false})
	p := ack.Props
	if ack.ReturnCode != 0 || !p.has(propAssignedClientID) || p.AssignedClientID == "" {
		t.Fatalf("CONNACK %+v %+v, want an assigned client id", ack, p)
	}
	if p.MaximumPacketSize != 4096 || p.ReceiveMaximum != 7 || p.TopicAliasMaximum != topicAliasMaximum ||
		p.has(propSharedAvailable) || p.has(propSubIDAvailable) { // both available: said by their absence
		t.Fatalf("CONNACK properties %+v", p)
	}
	if n := srv.Stats().V5Connects; n != 1 {
		t.Fatalf("V5Connects %d, want 1", n)
	}
	c.send(&disconnectPacket{})
	c.expectClosed()
	e := srv.rec.waitTCPClean(t, p.AssignedClientID)
	if e.Reason != presence.ReasonClientDisconnect {
		t.Fatalf("tcpclean reason %s, want client_disconnect", e.Reason)
	}

	v3 := dial(t, srv.addr)
	v3.send(&connectPacket{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "v3", CleanSession: true})
	v3.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 8)
	n, err := v3.nc.Read(buf)
	if err != nil || !bytes.Equal(buf[:n], []byte{0x20, 2, 0, 0}) {
		t.Fatalf("3.1.1 CONNACK % x (%v), want 20 02 00 00", buf[:n], err)
	}
}

// TestV5PublishSubscribeQoS: a v5 subscriber gets QoS 0, 1 and 2 messages
// from a v5 publisher with their properties forwarded [MQTT-3.3.2-18]
// (user properties in order [MQTT-3.3.2-17]), and a 3.1.1 subscriber gets
// the same messages without them.
func TestV5PublishSubscribeQoS(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true})
	sub := connectV5OK(t, srv.addr, "sub5")
	if codes := sub.subscribe(1, 2, "q/#"); !bytes.Equal(codes, []byte{2}) {
		t.Fatalf("SUBACK %v", codes)
	}
	old := connectOK(t, srv.addr, "sub3")
	old.subscribe(1, 2, "q/#")
	pub := connectV5OK(t, srv.addr, "pub5")
	meta := props(func(p *properties) {
		p.ContentType, p.ResponseTopic, p.CorrelationData = "text/plain", "reply/1", []byte{1, 2}
		p.User = []userProperty{{"a", "1"}, {"a", "2"}}
	}, propContentType, propResponseTopic, propCorrelationData, propUserProperty)
	for qos := byte(0); qos <= 2; qos++ {
		pub.publish(&publishPacket{Topic: "q/x", QoS: qos, ID: 10 + uint16(qos), Payload: []byte{'m', '0' + qos}, Props: meta})
		got := sub.receive(true)
		if got.QoS != qos || string(got.Payload) != string([]byte{'m', '0' + qos}) {
			t.Fatalf("v5 subscriber got %+v for QoS %d", got, qos)
		}
		if got.Props == nil || got.Props.ContentType != "text/plain" || got.Props.ResponseTopic != "reply/1" ||
			!bytes.Equal(got.Props.CorrelationData, []byte{1, 2}) || len(got.Props.User) != 2 || got.Props.User[1].Value != "2" {
			t.Fatalf("properties not forwarded: %+v", got.Props)
		}
		if plain := old.receive(true); plain.QoS != qos || plain.Props != nil {
			t.Fatalf("3.1.1 subscriber got %+v", plain)
		}
	}
	// UNSUBACK carries a Reason Code per filter [MQTT-3.11.3-1].
	sub.send(&unsubscribePacket{ID: 9, V5: true, Filters: []string{"q/#", "none"}})
	if ack := sub.expect(typeUnsuback).(*unsubackPacket); !bytes.Equal(ack.ReasonCodes, []byte{0, rcNoSubscriptionExisted}) {
		t.Fatalf("UNSUBACK %+v", ack)
	}
}

// TestV5AuthMethodRefused: without enhanced authentication configured, a
// CONNECT with an Authentication Method gets CONNACK 0x8C [MQTT-4.12.0-1];
// an AUTH packet after CONNECT is a protocol error (DISCONNECT 0x82).
func TestV5AuthMethodRefused(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true})
	c, ack := connectV5(t, srv.addr, connectPacket{ClientID: "scram", CleanSession: true,
		Props: props(func(p *properties) { p.AuthMethod = "SCRAM-SHA-1" }, propAuthMethod)})
	if ack.ReturnCode != rcBadAuthMethod || ack.SessionPresent {
		t.Fatalf("CONNACK %+v, want 0x8C", ack)
	}
	c.expectClosed()
	if events := srv.rec.forClient("scram"); len(events) != 0 {
		t.Fatalf("events %v for a refused client", events)
	}

	c = connectV5OK(t, srv.addr, "auth-later")
	c.send(&authPacket{Reason: rcReAuthenticate, Props: props(func(p *properties) { p.AuthMethod = "x" }, propAuthMethod)})
	c.expectDisconnect(rcProtocolError)
	if e := srv.rec.waitTCPClean(t, "auth-later"); e.Reason != presence.ReasonProtocolError {
		t.Fatalf("tcpclean %+v", e)
	}
}

// TestV5MalformedGetsDisconnect: a malformed packet from a v5 client —
// a duplicate property [MQTT-2.2.2-2], reserved subscription option bits
// [MQTT-3.8.3-5], an invalid reason code — is answered with DISCONNECT
// 0x81 (0x82 for a protocol error) before the close [MQTT-4.13.1-1].
func TestV5MalformedGetsDisconnect(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true})
	for _, tt := range []struct {
		name string
		wire []byte
		code byte
	}{
		{"duplicate property", []byte{0x30, 12, 0, 1, 't', 8, 0x03, 0, 1, 'a', 0x03, 0, 1, 'b'}, rcMalformed},
		{"unknown property", []byte{0x30, 7, 0, 1, 't', 2, 0x04, 0, 'x'}, rcMalformed},
		{"reserved subscription options", []byte{0x82, 7, 0, 1, 0, 0, 1, 'a', 0x80}, rcMalformed},
		{"invalid PUBACK reason code", []byte{0x40, 3, 0, 1, 0x05}, rcProtocolError},
		{"subscription identifier from a client", []byte{0x30, 6, 0, 1, 't', 2, 0x0b, 1}, rcProtocolError},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := connectV5OK(t, srv.addr, "bad")
			c.write(tt.wire)
			c.expectDisconnect(tt.code)
		})
	}
}

// TestV5TopicAlias: a Topic Alias set by a PUBLISH with a topic names that
// topic in later PUBLISHes without one [MQTT-3.3.2-12]; an alias above the
// server's Topic Alias Maximum is DISCONNECT 0x94 [MQTT-3.3.2-9]; an alias
// never set is a protocol error.
func TestV5TopicAlias(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true})
	sub := connectV5OK(t, srv.addr, "alias-sub")
	sub.subscribe(1, 0, "alias/#")
	pub := connectV5OK(t, srv.addr, "alias-pub")
	alias := func(n uint16) *properties { return props(func(p *properties) { p.TopicAlias = n }, propTopicAlias) }
	pub.publish(&publishPacket{Topic: "alias/one", QoS: 1, Payload: []byte("1"), Props: alias(3)})
	pub.publish(&publishPacket{QoS: 1, Payload: []byte("2"), Props: alias(3)})
	for _, want := range []string{"1", "2"} {
		if got := sub.receive(true); got.Topic != "alias/one" || string(got.Payload) != want || got.Props.has(propTopicAlias) {
			t.Fatalf("got %+v (%+v), want %s on alias/one without the alias", got, got.Props, want)
		}
	}
	pub.send(&publishPacket{V5: true, Topic: "alias/x", Payload: []byte("x"), Props: alias(topicAliasMaximum + 1)})
	pub.expectDisconnect(rcTopicAliasInvalid)

	unset := connectV5OK(t, srv.addr, "alias-unset")
	unset.send(&publishPacket{V5: true, Payload: []byte("x"), Props: alias(1)})
	unset.expectDisconnect(rcProtocolError)
}

// TestV5MaximumPacketSize: a packet over the server's Maximum Packet Size
// is DISCONNECT 0x95 [MQTT-3.2.2-15]; a message over the client's is not
// sent to it [MQTT-3.1.2-24], [MQTT-3.1.2-25], while smaller ones are.
func TestV5MaximumPacketSize(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true, MaxPacketSize: 512})
	big := connectV5OK(t, srv.addr, "big")
	big.send(&publishPacket{V5: true, Topic: "t", Payload: make([]byte, 600)})
	big.expectDisconnect(rcPacketTooLarge)

	small, ack := connectV5(t, srv.addr, connectPacket{ClientID: "small", CleanSession: true,
		Props: props(func(p *properties) { p.MaximumPacketSize = 64 }, propMaximumPacketSize)})
	if ack.ReturnCode != 0 {
		t.Fatalf("CONNACK %+v", ack)
	}
	small.subscribe(1, 1, "size/#")
	pub := connectV5OK(t, srv.addr, "sizer")
	pub.publish(&publishPacket{Topic: "size/big", QoS: 1, Payload: make([]byte, 100)})
	pub.publish(&publishPacket{Topic: "size/big0", Payload: make([]byte, 100)})
	pub.publish(&publishPacket{Topic: "size/small", QoS: 1, Payload: []byte("ok")})
	if got := small.receive(true); got.Topic != "size/small" {
		t.Fatalf("got %s first, want the oversize messages skipped", got.Topic)
	}
	if n := srv.Stats().TooLargeForPeer; n != 2 {
		t.Fatalf("TooLargeForPeer %d, want 2", n)
	}
}

// TestV5ReceiveMaximum: the server keeps at most the client's Receive
// Maximum of QoS 1 messages unacknowledged [MQTT-3.3.4-9]: with 1, the
// second waits for the first PUBACK. The barrier's QoS 0 message overtakes
// what waits in the session, so it proves the second was held back.
func TestV5ReceiveMaximum(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true})
	admin := connectOK(t, srv.addr, "admin")
	admin.retainBarrier()
	c, _ := connectV5(t, srv.addr, connectPacket{ClientID: "slow", CleanSession: true,
		Props: props(func(p *properties) { p.ReceiveMaximum = 1 }, propReceiveMaximum)})
	c.subscribe(1, 1, "rm/#")
	pub := connectOK(t, srv.addr, "rm-pub")
	pub.publish(&publishPacket{Topic: "rm/a", QoS: 1, ID: 1, Payload: []byte("1")})
	pub.publish(&publishPacket{Topic: "rm/a", QoS: 1, ID: 2, Payload: []byte("2")})
	first := c.receive(false)
	c.barrier(0)
	c.send(&ackPacket{Type: typePuback, ID: first.ID})
	if second := c.receive(true); string(second.Payload) != "2" {
		t.Fatalf("got %+v, want the second message after the PUBACK", second)
	}
}

// TestV5DisconnectReasonAndWill: DISCONNECT 0x04 publishes the will
// [MQTT-3.14.4-3 does not apply], 0x00 discards it; $SYS/presence reports
// protocol level 5 and the reason code.
func TestV5DisconnectReasonAndWill(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true, PresenceTopics: true})
	watcher := connectOK(t, srv.addr, "watcher")
	watcher.retainBarrier()
	watcher.subscribe(1, 0, "will/#")
	watcher.subscribe(2, 0, "$SYS/presence/+/+")
	for _, tt := range []struct {
		id       string
		reason   byte
		wantWill bool
	}{{"with-will", rcDisconnectWithWill, true}, {"normal", rcSuccess, false}} {
		c, _ := connectV5(t, srv.addr, connectPacket{ClientID: tt.id, CleanSession: true,
			Will: &willMessage{Topic: "will/" + tt.id, Payload: []byte("gone")}})
		connected := watcher.receive(false)
		var pc presenceConnected
		if err := json.Unmarshal(connected.Payload, &pc); err != nil || pc.ProtocolLevel != 5 {
			t.Fatalf("connected message %s (%v), want protocolLevel 5", connected.Payload, err)
		}
		c.send(&disconnectPacket{Reason: tt.reason})
		c.expectClosed()
		srv.rec.waitTCPClean(t, tt.id)
		if tt.wantWill {
			if w := watcher.receive(false); w.Topic != "will/"+tt.id {
				t.Fatalf("got %s, want the will", w.Topic)
			}
		}
		gone := watcher.receive(false)
		var pd presenceDisconnected
		if err := json.Unmarshal(gone.Payload, &pd); err != nil || pd.ReasonCode == nil || *pd.ReasonCode != tt.reason || !pd.DisconnectSent {
			t.Fatalf("disconnected message %s (%v), want reasonCode %d", gone.Payload, err, tt.reason)
		}
		watcher.barrier(0) // no will after all for "normal"
	}
}

// TestV5ServerSentDisconnect: the server tells a v5 client why it closes
// the connection: 0x8E when its session is taken over [MQTT-3.1.4-3], 0x98
// for an operator's kick, 0x8D for a keepalive timeout, 0x8B at shutdown.
func TestV5ServerSentDisconnect(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true})
	first := connectV5OK(t, srv.addr, "twin")
	connectV5OK(t, srv.addr, "twin")
	first.expectDisconnect(rcSessionTakenOver)

	kicked := connectV5OK(t, srv.addr, "kicked")
	if _, ok, err := srv.Kick(t.Context(), "kicked", false); !ok || err != nil {
		t.Fatalf("Kick: %t %v", ok, err)
	}
	kicked.expectDisconnect(rcAdministrativeAction)

	sleepy, _ := connectV5(t, srv.addr, connectPacket{ClientID: "sleepy", CleanSession: true, Keepalive: 1})
	sleepy.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	p, err := sleepy.next(10 * time.Second)
	if d, ok := p.(*disconnectPacket); err != nil || !ok || d.Reason != rcKeepAliveTimeout {
		t.Fatalf("got %#v (%v), want DISCONNECT 0x8D", p, err)
	}

	other := startServer(t, Config{AllowAnonymous: true})
	c := connectV5OK(t, other.addr, "stopping")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := other.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	c.expectDisconnect(rcServerShuttingDown)
}

// TestV5SessionExpiry: a Session Expiry Interval of 0 ends the session
// with the connection, even without Clean Start; above 0 it is resumed
// (session present) [MQTT-3.1.2-23]; a DISCONNECT may set it to 0.
func TestV5SessionExpiry(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true})
	expiry := func(s uint32) *properties {
		return props(func(p *properties) { p.SessionExpiry = s }, propSessionExpiry)
	}
	for i, tt := range []struct {
		name        string
		expiry      *properties
		disconnect  *properties
		wantPresent bool
	}{
		{"expiry 0", nil, nil, false},
		{"expiry 60", expiry(60), nil, true},
		{"expiry 60, DISCONNECT sets 0", expiry(60), expiry(0), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("exp-%d", i)
			c, ack := connectV5(t, srv.addr, connectPacket{ClientID: id, Props: tt.expiry})
			if ack.ReturnCode != 0 || ack.SessionPresent {
				t.Fatalf("first CONNACK %+v", ack)
			}
			c.subscribe(1, 1, "exp/"+id)
			c.send(&disconnectPacket{Props: tt.disconnect})
			c.expectClosed()
			srv.rec.waitTCPClean(t, id)
			again, ack := connectV5(t, srv.addr, connectPacket{ClientID: id, Props: tt.expiry})
			if ack.SessionPresent != tt.wantPresent {
				t.Fatalf("session present %t, want %t", ack.SessionPresent, tt.wantPresent)
			}
			again.send(&disconnectPacket{})
		})
	}
	// Setting a non-zero expiry at DISCONNECT after 0 at CONNECT is a
	// protocol error [MQTT-3.14.2-2].
	c := connectV5OK(t, srv.addr, "exp-late")
	c.send(&disconnectPacket{Props: expiry(5)})
	c.expectDisconnect(rcProtocolError)
	if e := srv.rec.waitTCPClean(t, "exp-late"); e.Reason != presence.ReasonProtocolError {
		t.Fatalf("tcpclean %+v", e)
	}
}

// TestV5ExpiredSessionIsNotResumed: once its Session Expiry Interval has
// passed, a session is gone when its client comes back, even before the
// periodic sweep has run: CONNACK says no session present and nothing of
// it (its subscription) is kept [MQTT-3.1.2-23]. Before the expiry it is
// resumed. The broker's clock is the test's; the sweep never runs here.
func TestV5ExpiredSessionIsNotResumed(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	srv := startServer(t, Config{AllowAnonymous: true, Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	expiry := props(func(p *properties) { p.SessionExpiry = 10 }, propSessionExpiry)
	leave := func(id string) {
		t.Helper()
		c, ack := connectV5(t, srv.addr, connectPacket{ClientID: id, Props: expiry})
		if ack.ReturnCode != 0 {
			t.Fatalf("CONNACK %+v", ack)
		}
		c.subscribe(1, 1, "exp2/"+id)
		c.send(&disconnectPacket{})
		c.expectClosed()
		srv.rec.waitTCPClean(t, id)
	}
	leave("kept")
	clock.Add(int64(9 * time.Second))
	if c, ack := connectV5(t, srv.addr, connectPacket{ClientID: "kept", Props: expiry}); !ack.SessionPresent {
		t.Fatalf("9 s into a 10 s expiry: CONNACK %+v, want the session resumed", ack)
	} else {
		c.send(&disconnectPacket{})
	}
	leave("gone")
	clock.Add(int64(11 * time.Second))
	c, ack := connectV5(t, srv.addr, connectPacket{ClientID: "gone", Props: expiry})
	if ack.ReturnCode != 0 || ack.SessionPresent {
		t.Fatalf("11 s into a 10 s expiry: CONNACK %+v, want no session present", ack)
	}
	// Its subscription went with it: a publish to it is not delivered.
	pub := connectV5OK(t, srv.addr, "exp2-pub")
	pub.retainBarrier()
	pub.send(&publishPacket{Topic: "exp2/gone", QoS: 1, ID: 1, Payload: []byte("x"), V5: true})
	pub.expect(typePuback)
	c.barrier(0) // fails on the message, had the subscription survived
}

// TestV5SubscriptionOptions: No Local keeps a client's own messages from
// its subscription [MQTT-3.8.3-3]; Retain As Published keeps the retain
// flag of a live message [MQTT-3.3.1-12] (cleared otherwise
// [MQTT-3.3.1-13]); Retain Handling 1 sends retained messages only for a
// new subscription [MQTT-3.3.1-10], 2 never [MQTT-3.3.1-11]. Retained
// messages keep their properties.
func TestV5SubscriptionOptions(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true})
	admin := connectOK(t, srv.addr, "admin")
	admin.retainBarrier()
	c := connectV5OK(t, srv.addr, "opts")
	subscribe := func(id uint16, filter string, options byte) {
		t.Helper()
		c.send(&subscribePacket{V5: true, ID: id, Subscriptions: []subscription{{Filter: filter, QoS: 1, Options: options}}})
		if ack := c.expect(typeSuback).(*subackPacket); ack.ID != id || ack.ReturnCodes[0] != 1 {
			t.Fatalf("SUBACK %+v", ack)
		}
	}
	subscribe(1, "own/#", optNoLocal)
	c.publish(&publishPacket{Topic: "own/x", QoS: 1, Payload: []byte("mine")})
	c.barrier(0) // nothing of its own came before it

	subscribe(2, "rap/#", optRetainAsPublished)
	subscribe(3, "plain/#", 0)
	admin.publish(&publishPacket{Topic: "rap/x", QoS: 1, Retain: true, Payload: []byte("r")})
	if got := c.receive(true); got.Topic != "rap/x" || !got.Retain {
		t.Fatalf("got %+v, want rap/x with retain set", got)
	}
	admin.publish(&publishPacket{Topic: "plain/x", QoS: 1, Retain: true, Payload: []byte("p"),
		V5: false})
	if got := c.receive(true); got.Topic != "plain/x" || got.Retain {
		t.Fatalf("got %+v, want plain/x with retain cleared", got)
	}

	tagged := connectV5OK(t, srv.addr, "tagger")
	tagged.publish(&publishPacket{Topic: "keep/x", QoS: 1, Retain: true, Payload: []byte("k"),
		Props: props(func(p *properties) { p.ContentType = "kept" }, propContentType)})
	subscribe(4, "keep/#", 0x10) // Retain Handling 1, new: sent
	if got := c.receive(true); got.Topic != "keep/x" || !got.Retain || got.Props.ContentType != "kept" {
		t.Fatalf("got %+v (%+v), want the retained keep/x with its content type", got, got.Props)
	}
	subscribe(4, "keep/#", 0x10) // 1 again, existing: not sent
	subscribe(5, "keep/+", 0x20) // 2: never sent
	c.barrier(0)
}

// TestV5RefusalReasonCodes: a v5 client learns why: PUBACK 0x87 for a
// publish the broker refuses (its presence topics) [MQTT-3.4.2.1], PUBREC
// 0x87 ending the QoS 2 flow, and CONNACK 0x97 when the persistent session
// budget is full.
func TestV5RefusalReasonCodes(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true, MaxPersistentSessions: 1})
	c := connectV5OK(t, srv.addr, "refused-pub")
	c.send(&publishPacket{V5: true, Topic: "$SYS/presence/x/connected", QoS: 1, ID: 1, Payload: []byte("forged")})
	if ack := c.expect(typePuback).(*ackPacket); ack.Reason != rcNotAuthorized {
		t.Fatalf("PUBACK %+v, want reason 0x87", ack)
	}
	c.send(&publishPacket{V5: true, Topic: "$SYS/presence/x/connected", QoS: 2, ID: 2, Payload: []byte("forged")})
	if ack := c.expect(typePubrec).(*ackPacket); ack.Reason != rcNotAuthorized {
		t.Fatalf("PUBREC %+v, want reason 0x87", ack)
	}
	// The flow ended: a PUBREL for it is an unknown id [MQTT-3.7.2.1].
	c.send(&ackPacket{Type: typePubrel, ID: 2})
	if comp := c.expect(typePubcomp).(*ackPacket); comp.Reason != rcPacketIDNotFound {
		t.Fatalf("PUBCOMP %+v, want 0x92", comp)
	}

	expiry := props(func(p *properties) { p.SessionExpiry = 60 }, propSessionExpiry)
	if _, ack := connectV5(t, srv.addr, connectPacket{ClientID: "keeper", Props: expiry}); ack.ReturnCode != 0 {
		t.Fatalf("first persistent session: CONNACK %+v", ack)
	}
	over, ack := connectV5(t, srv.addr, connectPacket{ClientID: "one-too-many", Props: expiry})
	if ack.ReturnCode != rcQuotaExceeded {
		t.Fatalf("CONNACK %#02x, want 0x97", ack.ReturnCode)
	}
	over.expectClosed()
}

// TestV5MessageExpiry: a retained message is delivered with its Message
// Expiry Interval lowered by the time it waited [MQTT-3.3.2-6], and not at
// all once it has expired [MQTT-3.3.2-5]. The broker's clock is the test's.
func TestV5MessageExpiry(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	srv := startServer(t, Config{AllowAnonymous: true, Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	admin := connectOK(t, srv.addr, "admin")
	admin.retainBarrier()
	pub := connectV5OK(t, srv.addr, "expiring")
	pub.publish(&publishPacket{Topic: "exp/r", QoS: 1, Retain: true, Payload: []byte("soon gone"),
		Props: props(func(p *properties) { p.MessageExpiry = 10 }, propMessageExpiry)})

	clock.Add(int64(4 * time.Second))
	c := connectV5OK(t, srv.addr, "late")
	c.subscribe(1, 1, "exp/#")
	if got := c.receive(true); got.Topic != "exp/r" || got.Props.MessageExpiry != 6 {
		t.Fatalf("got %+v (%+v), want exp/r with 6 s left", got, got.Props)
	}
	clock.Add(int64(7 * time.Second))
	c.subscribe(2, 1, "exp/#")
	c.barrier(0) // the expired message did not come
	if n := srv.Stats().MessagesExpired; n != 1 {
		t.Fatalf("MessagesExpired %d, want 1", n)
	}
}

// TestV5WillDelay: a will with a Will Delay Interval waits on the session
// instead of being published at the close, is cancelled when a connection
// takes the session up in time [MQTT-3.1.3-9], and is published once the
// delay has passed.
func TestV5WillDelay(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true})
	watcher := connectOK(t, srv.addr, "watcher")
	watcher.subscribe(1, 0, "lastwill/#")
	willAfter := func(id string, seconds uint32) connectPacket {
		return connectPacket{ClientID: id,
			Props: props(func(p *properties) { p.SessionExpiry = 600 }, propSessionExpiry),
			Will: &willMessage{Topic: "lastwill/" + id, Payload: []byte("gone"),
				Props: props(func(p *properties) { p.WillDelay = seconds }, propWillDelay)}}
	}
	pending := func(id string) bool {
		srv.sessMu.Lock()
		sess := srv.sessions[id]
		srv.sessMu.Unlock()
		sess.mu.Lock()
		defer sess.mu.Unlock()
		return sess.pendingWill != nil
	}

	c, _ := connectV5(t, srv.addr, willAfter("patient", 600))
	c.nc.Close() // no DISCONNECT: the will is due, after its delay
	srv.rec.waitTCPClean(t, "patient")
	if !pending("patient") {
		t.Fatal("the will did not wait for its delay")
	}
	again, ack := connectV5(t, srv.addr, willAfter("patient", 600))
	if !ack.SessionPresent || pending("patient") {
		t.Fatalf("reconnect: session present %t, will still pending %t", ack.SessionPresent, pending("patient"))
	}
	again.send(&disconnectPacket{})

	quick, _ := connectV5(t, srv.addr, willAfter("quick", 1))
	quick.nc.Close()
	if w := watcher.receive(false); w.Topic != "lastwill/quick" {
		t.Fatalf("got %s, want the delayed will of quick", w.Topic)
	}
	if st := srv.Stats(); st.WillsDelayed != 2 || st.WillsCancelled != 1 || st.WillsPublished != 1 {
		t.Fatalf("wills delayed %d, cancelled %d, published %d; want 2, 1, 1", st.WillsDelayed, st.WillsCancelled, st.WillsPublished)
	}
	// A delayed will keeps its bytes of the will budget until it is
	// published or cancelled; the DISCONNECT discarded the last one.
	srv.rec.waitTCPClean(t, "patient")
	waitUntil(t, "every will's bytes given back", func() bool { return srv.Stats().WillBytes == 0 })
}

// TestV5PayloadFormatChecked: a payload that says it is UTF-8 (Payload
// Format Indicator 1) and is not gets PUBACK 0x99 and is not delivered; a
// will like it, CONNACK 0x99.
func TestV5PayloadFormatChecked(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true})
	utf8Said := props(func(p *properties) { p.PayloadFormat = 1 }, propPayloadFormat)
	c := connectV5OK(t, srv.addr, "formats")
	c.subscribe(1, 1, "fmt/#")
	c.send(&publishPacket{V5: true, Topic: "fmt/bad", QoS: 1, ID: 1, Payload: []byte{0xff, 0xfe}, Props: utf8Said})
	if ack := c.expect(typePuback).(*ackPacket); ack.Reason != rcPayloadFormatInvalid {
		t.Fatalf("PUBACK %+v, want 0x99", ack)
	}
	c.publish(&publishPacket{Topic: "fmt/good", QoS: 1, ID: 2, Payload: []byte("héllo"), Props: utf8Said})
	if got := c.receive(true); got.Topic != "fmt/good" || got.Props.PayloadFormat != 1 {
		t.Fatalf("got %+v, want only fmt/good, with its indicator", got)
	}
	w, ack := connectV5(t, srv.addr, connectPacket{ClientID: "bad-will", CleanSession: true,
		Will: &willMessage{Topic: "fmt/will", Payload: []byte{0xc3}, Props: utf8Said}})
	if ack.ReturnCode != rcPayloadFormatInvalid {
		t.Fatalf("CONNACK %#02x, want 0x99", ack.ReturnCode)
	}
	w.expectClosed()
}

// TestV5SubscriptionIdentifiers: a message matching several subscriptions
// of a session comes once, with the Subscription Identifiers of those that
// have one [MQTT-3.3.4-3], [MQTT-3.3.4-4]; a subscription replaced without
// an identifier loses it, an unsubscribed one too; retained messages sent
// on subscribe carry it; a 3.1.1 subscriber never sees any.
func TestV5SubscriptionIdentifiers(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true})
	c := connectV5OK(t, srv.addr, "ids")
	subscribe := func(id uint16, subID uint32, filter string) {
		t.Helper()
		p := &subscribePacket{V5: true, ID: id, Subscriptions: []subscription{{Filter: filter, QoS: 1}}}
		if subID != 0 {
			p.Props = props(func(p *properties) { p.SubscriptionIDs = []uint32{subID} }, propSubscriptionID)
		}
		c.send(p)
		c.expect(typeSuback)
	}
	subscribe(1, 7, "ids/+")
	subscribe(2, 300_000, "ids/#")
	subscribe(3, 0, "ids/x") // no identifier of its own
	pub := connectOK(t, srv.addr, "ids-pub")
	pub.publish(&publishPacket{Topic: "ids/x", QoS: 1, Payload: []byte("1")})
	got := c.receive(true)
	if !reflect.DeepEqual(got.Props.SubscriptionIDs, []uint32{7, 300_000}) {
		t.Fatalf("subscription identifiers %v, want [7 300000]", got.Props.SubscriptionIDs)
	}
	subscribe(4, 0, "ids/+") // replaced without an identifier
	c.send(&unsubscribePacket{V5: true, ID: 5, Filters: []string{"ids/#"}})
	c.expect(typeUnsuback)
	pub.publish(&publishPacket{Topic: "ids/x", QoS: 0, Retain: true, Payload: []byte("2")})
	if got := c.receive(true); got.Props.has(propSubscriptionID) {
		t.Fatalf("subscription identifiers %v, want none", got.Props.SubscriptionIDs)
	}
	subscribe(6, 42, "ids/x") // the retained message comes with 42
	if got := c.receive(true); !got.Retain || !reflect.DeepEqual(got.Props.SubscriptionIDs, []uint32{42}) {
		t.Fatalf("retained message %+v with identifiers %v, want [42]", got, got.Props.SubscriptionIDs)
	}
}

// TestV5SharedSubscriptions: the members of a shared subscription
// $share/{name}/{filter} get its messages in turn, one copy each [MQTT-4.8.2];
// another share name and a plain subscription get every message; no
// retained message is sent on a shared subscription; a share name with a
// wildcard, a share without a filter and No Local on a share are protocol
// errors; for a 3.1.1 client "$share/..." stays a filter like any other.
func TestV5SharedSubscriptions(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true})
	admin := connectOK(t, srv.addr, "admin")
	admin.retainBarrier()
	admin.publish(&publishPacket{Topic: "work/old", QoS: 1, Retain: true, Payload: []byte("retained")})
	a, b := connectV5OK(t, srv.addr, "worker-a"), connectV5OK(t, srv.addr, "worker-b")
	other := connectV5OK(t, srv.addr, "auditor")
	a.subscribe(1, 1, "$share/workers/work/#")
	b.subscribe(1, 1, "$share/workers/work/#")
	other.subscribe(1, 1, "$share/audit/work/#")
	a.barrier(0) // no retained work/old came on the shared subscription
	for i := range 4 {
		admin.publish(&publishPacket{Topic: "work/job", QoS: 1, Payload: []byte{'0' + byte(i)}})
	}
	got := map[string]int{}
	for _, c := range []*rawClient{a, b} {
		for range 2 {
			p := c.receive(true)
			got[string(p.Payload)]++
		}
		c.barrier(0) // exactly two each
	}
	if len(got) != 4 {
		t.Fatalf("workers got %v, want each of the 4 jobs once", got)
	}
	for range 4 {
		other.receive(true)
	}
	other.barrier(0)

	for _, tt := range []struct {
		name, filter string
		options      byte
		code         byte
	}{
		{"wildcard in share name", "$share/w+/t", 0, rcMalformed}, // a malformed filter already [MQTT-4.7.1-3]
		{"no filter", "$share/w", 0, rcProtocolError},
		{"No Local", "$share/w/t", optNoLocal, rcProtocolError},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := connectV5OK(t, srv.addr, "bad-share")
			c.send(&subscribePacket{V5: true, ID: 1, Subscriptions: []subscription{{Filter: tt.filter, QoS: 0, Options: tt.options}}})
			c.expectDisconnect(tt.code)
		})
	}

	old := connectOK(t, srv.addr, "v3-share")
	old.subscribe(1, 0, "$share/workers/work/#")
	admin.publish(&publishPacket{Topic: "$share/workers/work/x", Payload: []byte("literal")})
	if p := old.receive(false); p.Topic != "$share/workers/work/x" {
		t.Fatalf("3.1.1 client got %s", p.Topic)
	}
}
