package mqttbroker_test

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/presenced/presenced/mqttbroker"
	"github.com/presenced/presenced/mqttbroker/auth"
)

// TestPresenceTopicsWithACL: with a mosquitto-style ACL only a client
// granted read access to $SYS/presence may subscribe there; '#' does not
// reach it, and write access to $SYS/# does not let a client forge
// presence.
func TestPresenceTopicsWithACL(t *testing.T) {
	acl, err := auth.ParseACL(strings.NewReader(
		"user watcher\ntopic read $SYS/presence/#\nuser device\ntopic readwrite #\ntopic write $SYS/#\n"), "acl")
	if err != nil {
		t.Fatal(err)
	}
	srv := mqttbroker.New(mqttbroker.Config{AllowAnonymous: true, Authorizer: acl, PresenceTopics: true}, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	connect := func(clientID, user string) paho.Client {
		t.Helper()
		c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + ln.Addr().String()).SetClientID(clientID).
			SetUsername(user).SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
		if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("connect %s: %v", clientID, tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(0) })
		return c
	}
	subscribe := func(c paho.Client, filter string, want byte, got chan<- paho.Message) {
		t.Helper()
		tok := c.Subscribe(filter, 0, func(_ paho.Client, m paho.Message) { got <- m })
		if !tok.WaitTimeout(5 * time.Second) {
			t.Fatalf("no SUBACK for %s", filter)
		}
		if code := tok.(*paho.SubscribeToken).Result()[filter]; code != want {
			t.Fatalf("SUBACK %#x for %s, want %#x", code, filter, want)
		}
	}
	next := func(got <-chan paho.Message, what string) paho.Message {
		t.Helper()
		select {
		case m := <-got:
			return m
		case <-time.After(5 * time.Second):
			t.Fatalf("no message: want %s", what)
			return nil
		}
	}

	watcher := connect("watcher-1", "watcher")
	watched := make(chan paho.Message, 16)
	subscribe(watcher, "$SYS/presence/+/connected", 0, watched)

	device := connect("device", "device")
	deviceGot := make(chan paho.Message, 16)
	subscribe(device, "$SYS/presence/+/connected", 0x80, deviceGot)
	subscribe(device, "#", 0, deviceGot)
	if tok := device.Publish("$SYS/presence/fake/connected", 1, false, `{"clientId":"fake"}`); !tok.WaitTimeout(5 * time.Second) {
		t.Fatal("no PUBACK for the forged presence message")
	}
	if n := srv.Stats().PresenceForged; n != 1 {
		t.Fatalf("PresenceForged %d, want 1", n)
	}

	// The watcher's first message is device's connect (it subscribed
	// before device connected), then dev-3's: the forged one, routed
	// before its PUBACK, would have come before.
	if m := next(watched, "device connected"); m.Topic() != "$SYS/presence/device/connected" {
		t.Fatalf("watcher got %s %s", m.Topic(), m.Payload())
	}
	connect("dev-3", "device")
	m := next(watched, "dev-3 connected")
	var body struct{ ClientID, Username string }
	if err := json.Unmarshal(m.Payload(), &body); err != nil || m.Topic() != "$SYS/presence/dev-3/connected" ||
		body.ClientID != "dev-3" || body.Username != "device" || m.Qos() != 0 || m.Retained() {
		t.Fatalf("watcher got %s %s (qos %d retained %t, %v)", m.Topic(), m.Payload(), m.Qos(), m.Retained(), err)
	}

	// dev-3's presence went out before its CONNACK, so before this ping:
	// the device, refused on $SYS/presence and subscribed to '#', gets only
	// the ping.
	device.Publish("ping", 0, false, "x")
	if m := next(deviceGot, "ping"); m.Topic() != "ping" {
		t.Fatalf("device got %s %s, want only ping", m.Topic(), m.Payload())
	}
}
