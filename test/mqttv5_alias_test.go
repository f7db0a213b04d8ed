package test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// TestMQTTJSV5TopicAliases: MQTT.js (protocol 5, Topic Alias Maximum 4)
// gets the broker's outbound Topic Aliases [MQTT-3.3.2-10]: every message
// arrives in order on its topic — MQTT.js resolves the alias-only PUBLISHes
// itself [MQTT-3.3.2-12] and would fail on an alias it was never told — and
// each topic keeps one alias within the maximum.
func TestMQTTJSV5TopicAliases(t *testing.T) {
	dir := mqttjsDir(t)
	p := startServe(t, pgtest.URL(t))
	const clientID = "js-v5-alias"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js := startMQTTJS(t, ctx, dir, "aliases.js", "mqtt://"+p.MQTTAddr, clientID)
	stderr := js.stderr
	type message struct {
		Topic, Payload string
		Alias          int
	}
	var got []message
	for lines := js.lines; ; {
		if !lines.Scan() {
			t.Fatalf("mqtt.js ended before done: %v\n%s", lines.Err(), stderr)
		}
		line := lines.Text()
		if line == "done" {
			break
		}
		if strings.HasPrefix(line, "error") {
			t.Fatalf("mqtt.js: %s\n%s", line, stderr)
		}
		var m message
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("mqtt.js line %q: %v", line, err)
		}
		got = append(got, m)
	}
	if err := js.wait(); err != nil {
		t.Fatalf("mqtt.js exited: %v\n%s", err, stderr)
	}
	aliasOf := map[string]int{}
	for i, m := range got {
		topic := fmt.Sprintf("mqttjs-alias/%s/%c", clientID, "ab"[i%2])
		if m.Topic != topic || m.Payload != fmt.Sprint(i) || m.Alias < 1 || m.Alias > 4 {
			t.Fatalf("message %d: %+v, want %s payload %d with an alias in 1..4", i, m, topic, i)
		}
		if a, ok := aliasOf[topic]; ok && a != m.Alias {
			t.Fatalf("message %d: %s came with alias %d, before with %d", i, topic, m.Alias, a)
		}
		aliasOf[topic] = m.Alias
	}
	if len(got) != 6 || aliasOf[got[0].Topic] == aliasOf[got[1].Topic] {
		t.Fatalf("messages %+v, want 6 on two topics with two aliases", got)
	}
}
