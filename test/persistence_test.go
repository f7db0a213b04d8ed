package test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// persistentClient connects clientID with cleanSession=0, handing every
// message it receives (subscribed or not: a resumed session delivers what
// it queued) to onMessage.
func persistentClient(t *testing.T, addr, clientID string, onMessage mqtt.MessageHandler) mqtt.Client {
	t.Helper()
	opts := mqtt.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID(clientID).
		SetCleanSession(false).
		SetKeepAlive(30 * time.Second).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(5 * time.Second).
		SetDefaultPublishHandler(onMessage)
	client := mqtt.NewClient(opts)
	if tok := client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %q: %v", clientID, tok.Error())
	}
	t.Cleanup(func() { client.Disconnect(0) })
	return client
}

func waitToken(t *testing.T, what string, tok mqtt.Token) {
	t.Helper()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("%s: %v", what, tok.Error())
	}
}

// A broker restart — SIGTERM or SIGKILL — keeps persistent sessions and
// retained messages (--mqtt-persistence, on by default): the subscriber
// that reconnects without subscribing gets every QoS 1 and 2 message
// queued for it while it was away (QoS 2 exactly once), and a new
// subscriber gets the retained message.
func TestPersistentSessionsAndRetainedSurviveRestart(t *testing.T) {
	for _, restart := range []string{"SIGTERM", "SIGKILL"} {
		t.Run(restart, func(t *testing.T) {
			p := startServe(t, pgtest.URL(t))
			subID := "GID_persist@@@sub-" + restart
			sub := persistentClient(t, p.MQTTAddr, subID, func(mqtt.Client, mqtt.Message) {})
			waitToken(t, "subscribe", sub.SubscribeMultiple(map[string]byte{"persist/q1": 1, "persist/q2": 2}, nil))
			sub.Disconnect(250)

			pub := pahoConnect(t, p.MQTTAddr, "GID_persist@@@pub-"+restart, 30*time.Second)
			const n = 20
			for i := range n {
				// Each token completes on PUBACK / PUBCOMP: durable by then.
				waitToken(t, "publish q1", pub.Publish("persist/q1", 1, false, fmt.Sprintf("q1-%d", i)))
				waitToken(t, "publish q2", pub.Publish("persist/q2", 2, false, fmt.Sprintf("q2-%d", i)))
			}
			waitToken(t, "publish retained", pub.Publish("persist/retained", 1, true, "kept"))
			pub.Disconnect(250)

			if restart == "SIGTERM" {
				p.stop()
			} else {
				p.kill()
			}
			p.start()

			var mu sync.Mutex
			got := map[string]int{}
			all := make(chan struct{})
			closed := false
			persistentClient(t, p.MQTTAddr, subID, func(_ mqtt.Client, m mqtt.Message) {
				mu.Lock()
				defer mu.Unlock()
				got[string(m.Payload())]++
				if !closed && len(got) == 2*n {
					closed = true
					close(all)
				}
			})
			select {
			case <-all:
			case <-time.After(20 * time.Second):
				mu.Lock()
				t.Fatalf("after %s the resumed session delivered %d of %d distinct messages: %v\n%s", restart, len(got), 2*n, got, p.logs)
			}
			mu.Lock()
			for i := range n {
				if got[fmt.Sprintf("q1-%d", i)] < 1 {
					t.Errorf("QoS 1 message q1-%d lost", i)
				}
				if c := got[fmt.Sprintf("q2-%d", i)]; c != 1 {
					t.Errorf("QoS 2 message q2-%d delivered %d times, want exactly once", i, c)
				}
			}
			mu.Unlock()

			retained := make(chan mqtt.Message, 1)
			fresh := pahoConnect(t, p.MQTTAddr, "GID_persist@@@fresh-"+restart, 30*time.Second)
			waitToken(t, "subscribe retained", fresh.Subscribe("persist/retained", 1, func(_ mqtt.Client, m mqtt.Message) {
				select {
				case retained <- m:
				default:
				}
			}))
			select {
			case m := <-retained:
				if string(m.Payload()) != "kept" || !m.Retained() {
					t.Fatalf("retained message after %s: %q retained=%v, want \"kept\" retained", restart, m.Payload(), m.Retained())
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no retained message after %s", restart)
			}
		})
	}
}
