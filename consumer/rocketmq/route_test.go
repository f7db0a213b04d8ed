package rocketmq

import (
	"encoding/json"
	"testing"

	"github.com/presenced/presenced/presence"
)

// routeOf gives what a full decode gives, on the fast path for payloads as
// the broker writes them and on the slow one for anything else.
func TestRouteOfAgreesWithAFullDecode(t *testing.T) {
	clean := true
	broker := func(clientID string) []byte {
		b, err := json.Marshal(presence.Event{ClientID: clientID, ChannelID: "9f1c0a", Type: presence.EventConnect,
			Time: 1, ClientIP: "203.0.113.7:52311", Node: "n", Epoch: "e", CleanSession: &clean})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tt := range []struct {
		name    string
		payload []byte
		fast    bool
	}{
		{"as the broker writes it", broker("GID_a@@@device-1"), true},
		{"non-ASCII client id", broker("GID_a@@@gerät-ü"), true},
		{"escaped by encoding/json (<, >, &)", broker("GID_a@@@<dev>&"), false},
		{"quote in the client id", broker(`GID_a@@@dev"1`), false},
		{"other field order", []byte(`{"channelId":"c1","clientId":"x","eventType":"tcpclean"}`), false},
		{"spaces", []byte(`{ "clientId": "x", "channelId": "c1", "eventType": "connect" }`), false},
		{"only the three fields", []byte(`{"clientId":"x","channelId":"c1","eventType":"disconnect"}`), true},
		{"Alibaba's five keys in their order", []byte(`{"clientId":"GID_a@@@d","time":1,"eventType":"connect","channelId":"c","clientIp":"1.2.3.4:5"}`), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var want eventRoute
			if err := json.Unmarshal(tt.payload, &want); err != nil {
				t.Fatal(err)
			}
			got, err := routeOf(tt.payload)
			if err != nil || got != want {
				t.Fatalf("routeOf = %+v, %v; a full decode gives %+v", got, err, want)
			}
			if _, fast := routeFast(tt.payload); fast != tt.fast {
				t.Fatalf("fast path taken: %t, want %t", fast, tt.fast)
			}
		})
	}
}

// Payloads that are not JSON objects fail as a full decode fails.
func TestRouteOfRefusesWhatIsNotJSON(t *testing.T) {
	for _, p := range []string{``, `not json`, `{"clientId":"x"`, `{"clientId":"x","channelId":"c","eventType":"connect"`, `[1,2]`} {
		if _, err := routeOf([]byte(p)); err == nil {
			t.Errorf("routeOf(%q) succeeded, want an error", p)
		}
	}
}
