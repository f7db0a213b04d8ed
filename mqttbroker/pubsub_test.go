package mqttbroker

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// pahoClient connects a paho client to addr.
func pahoClient(t *testing.T, addr, clientID string, clean bool) paho.Client {
	t.Helper()
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(clientID).
		SetCleanSession(clean).SetAutoReconnect(false).SetConnectRetry(false).SetOrderMatters(true).
		SetConnectTimeout(5 * time.Second).SetKeepAlive(30 * time.Second).SetProtocolVersion(4)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("paho connect %s: %v", clientID, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func wait(t *testing.T, tok paho.Token) {
	t.Helper()
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("paho: %v", tok.Error())
	}
}

func TestPahoPublishSubscribeQoS(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true})
	sub := pahoClient(t, srv.addr, "paho-sub", true)
	pub := pahoClient(t, srv.addr, "paho-pub", true)
	type got struct {
		topic string
		qos   byte
		body  string
	}
	var mu sync.Mutex
	var received []got
	done := make(chan struct{}, 16)
	for subQoS := byte(0); subQoS <= 2; subQoS++ {
		filter := fmt.Sprintf("q/%d/+", subQoS)
		wait(t, sub.Subscribe(filter, subQoS, func(_ paho.Client, m paho.Message) {
			mu.Lock()
			received = append(received, got{m.Topic(), m.Qos(), string(m.Payload())})
			mu.Unlock()
			done <- struct{}{}
		}))
	}
	for subQoS := 0; subQoS <= 2; subQoS++ {
		for pubQoS := byte(0); pubQoS <= 2; pubQoS++ {
			wait(t, pub.Publish(fmt.Sprintf("q/%d/%d", subQoS, pubQoS), pubQoS, false, "m"))
		}
	}
	for range 9 {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("received only %v", received)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, r := range received {
		var subQoS, pubQoS byte
		fmt.Sscanf(r.topic, "q/%d/%d", &subQoS, &pubQoS)
		if r.qos != min(subQoS, pubQoS) || r.body != "m" {
			t.Errorf("%s arrived at QoS %d, want %d", r.topic, r.qos, min(subQoS, pubQoS))
		}
	}
	if st := srv.Stats(); st.MessagesIn != 9 || st.MessagesOut != 9 {
		t.Errorf("stats in/out = %d/%d, want 9/9", st.MessagesIn, st.MessagesOut)
	}
}

func TestRetainedMessages(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true})
	pub := connectOK(t, srv.addr, "retainer")
	pub.publish(&publishPacket{Topic: "r/a", Payload: []byte("old"), QoS: 1, Retain: true})
	pub.publish(&publishPacket{Topic: "r/a", Payload: []byte("new"), QoS: 1, Retain: true}) // replaces
	pub.publish(&publishPacket{Topic: "r/b", Payload: []byte("b"), Retain: true})
	pub.publish(&publishPacket{Topic: "r/c", Payload: []byte("c"), QoS: 2, Retain: true})
	pub.publish(&publishPacket{Topic: "r/c", Payload: []byte{}, QoS: 1, Retain: true}) // [MQTT-3.3.1-10] clears
	if n := srv.Stats().RetainedMessages; n != 2 {
		t.Fatalf("RetainedMessages = %d, want 2", n)
	}
	pub.retainBarrier()

	sub := connectOK(t, srv.addr, "late")
	if codes := sub.subscribe(1, 2, "r/+"); !slices.Equal(codes, []byte{2}) {
		t.Fatalf("SUBACK %v", codes)
	}
	// [MQTT-3.3.1-6], [MQTT-3.3.1-8] retained messages arrive with RETAIN set.
	got := map[string]*publishPacket{}
	for range 2 {
		p := sub.receive(true)
		got[p.Topic] = p
	}
	if a := got["r/a"]; a == nil || string(a.Payload) != "new" || !a.Retain || a.QoS != 1 {
		t.Fatalf("r/a: %+v", a)
	}
	if b := got["r/b"]; b == nil || !b.Retain || b.QoS != 0 {
		t.Fatalf("r/b: %+v", b)
	}
	// r/c was cleared: had it been kept, handling the SUBSCRIBE would have
	// delivered it, before the barrier's SUBSCRIBE was even read.
	sub.barrier(1)

	// [MQTT-3.3.1-9] forwarded to an existing subscription without RETAIN.
	pub.publish(&publishPacket{Topic: "r/a", Payload: []byte("live"), QoS: 1, Retain: true})
	if p := sub.receive(true); p.Retain || string(p.Payload) != "live" {
		t.Fatalf("live: %+v", p)
	}
	// [MQTT-3.8.4-3] subscribing again re-sends the retained messages.
	sub.subscribe(2, 0, "r/a")
	if p := sub.receive(true); !p.Retain || string(p.Payload) != "live" || p.QoS != 0 {
		t.Fatalf("re-subscribe: %+v", p)
	}
}

func TestOverlappingSubscriptionsDeliverOnce(t *testing.T) {
	// [MQTT-3.3.5-1] one copy at the highest QoS of the matching subscriptions.
	srv := startServer(t, Config{AllowAnonymous: true})
	sub := connectOK(t, srv.addr, "overlap")
	sub.subscribe(1, 1, "o/#")
	sub.subscribe(2, 2, "o/+")
	sub.subscribe(3, 0, "o/x")
	pub := connectOK(t, srv.addr, "overlap-pub")
	pub.retainBarrier()
	pub.publish(&publishPacket{Topic: "o/x", Payload: []byte("1"), QoS: 2, ID: 9})
	if p := sub.receive(true); p.QoS != 2 {
		t.Fatalf("QoS %d, want 2", p.QoS)
	}
	// Every copy was delivered before pub had its PUBREC: a second one
	// would come before the barrier.
	sub.barrier(1)
}

func TestDollarTopicsNotMatchedByLeadingWildcards(t *testing.T) {
	// [MQTT-4.7.2-1]
	srv := startServer(t, Config{AllowAnonymous: true})
	wild := connectOK(t, srv.addr, "wild")
	wild.subscribe(1, 0, "#", "+/info")
	exact := connectOK(t, srv.addr, "exact")
	exact.subscribe(1, 0, "$SYS/#")
	pub := connectOK(t, srv.addr, "dollar-pub")
	pub.publish(&publishPacket{Topic: "$SYS/info", Payload: []byte("x"), QoS: 1})
	if p := exact.receive(true); p.Topic != "$SYS/info" {
		t.Fatalf("got %+v", p)
	}
	// The barrier is a message wild does match, from the same publisher:
	// wild's deliveries are all QoS 0, queued on its connection in the
	// order they are routed, and $SYS/info was routed before pub had its
	// PUBACK. Had wild been sent $SYS/info, it would come first.
	pub.publish(&publishPacket{Topic: "sys/info", Payload: []byte("y"), QoS: 1})
	if p := wild.receive(true); p.Topic != "sys/info" {
		t.Fatalf("got %+v, want sys/info", p)
	}
}

func TestUnsubscribe(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true})
	c := connectOK(t, srv.addr, "unsub")
	c.subscribe(1, 1, "u/1", "u/2")
	c.send(&unsubscribePacket{ID: 5, Filters: []string{"u/1", "never/subscribed"}})
	if ack := c.expect(typeUnsuback).(*ackPacket); ack.ID != 5 { // [MQTT-3.10.4-4], [MQTT-3.10.4-5]
		t.Fatalf("UNSUBACK %+v", ack)
	}
	// Another client publishes: c's own PUBACK and the copy it is sent
	// leave on different goroutines, in either order.
	pub := connectOK(t, srv.addr, "unsub-pub")
	pub.publish(&publishPacket{Topic: "u/1", Payload: []byte("gone"), QoS: 1, ID: 1})
	pub.publish(&publishPacket{Topic: "u/2", Payload: []byte("kept"), QoS: 1, ID: 2})
	// u/2 is the barrier: both are QoS 1 from one publisher to one
	// session, delivered in the order published [MQTT-4.6.0-2], so u/1
	// would have come first.
	if p := c.receive(true); p.Topic != "u/2" {
		t.Fatalf("got %+v", p)
	}
}
