package test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// TestRefusedConnectsThroughRocketMQ: a paho client with a wrong password
// is refused by "presenced broker" (CONNACK 4); the refusal travels through
// RocketMQ (tag refused), "presenced consumer" stores it, and "presenced
// api" shows it under GET /clients/{id}/refused — with the user name, never
// the password — while the client stays offline.
func TestRefusedConnectsThroughRocketMQ(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("right-password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	passwords := filepath.Join(t.TempDir(), "passwords")
	if err := os.WriteFile(passwords, []byte("dev:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := startRMQPath(t, pgtest.URL(t), "HOME="+t.TempDir(), "PRESENCE_MQTT_PASSWORD_FILE="+passwords)

	const id = "GID_rref@@@dev-1"
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + r.broker.MQTTAddr).SetClientID(id).
		SetUsername("dev").SetPassword("wrong-password").
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second)
	client := mqtt.NewClient(opts)
	tok := client.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() == nil {
		t.Fatalf("connect with a wrong password: %v, want refused", tok.Error())
	}

	var got struct {
		ClientID string
		Items    []presence.RefusedConnect
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := r.api.send("GET", "/clients/"+url.PathEscape(id)+"/refused", "")
		if err := json.Unmarshal(body, &got); code != http.StatusOK || err != nil {
			t.Fatalf("refused of %s: %d %s", id, code, body)
		}
		if len(got.Items) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no refused connect of %s stored after 30s\nbroker:\n%s\nconsumer:\n%s", id, r.broker.logs, r.consumer.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	rc := got.Items[0]
	if len(got.Items) != 1 || rc.ReturnCode != 4 || rc.Username != "dev" || rc.Node != r.broker.Node || rc.RecordedAt.IsZero() || rc.ClientIP == "" {
		t.Fatalf("refused connects %+v, want one with code 4, user dev, node %s", got.Items, r.broker.Node)
	}
	r.broker.waitMetric("presenced_refused_connects_recorded_total", 1, 10*time.Second)
	r.consumer.waitMetric("presenced_consumer_refused_connects_total", 1, 10*time.Second)
	if st := r.api.status(id); st.Online || st.LastEventAt != nil {
		t.Fatalf("a refused client: %+v, want offline and no event", st)
	}
}
