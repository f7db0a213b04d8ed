package rocketmq

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/apache/rocketmq-client-go/v2/primitive"
)

func TestResolveNameServers(t *testing.T) {
	tests := []struct {
		in      []string
		want    string // one address that must be in the result
		wantErr bool
	}{
		{in: []string{"127.0.0.1:9876"}, want: "127.0.0.1:9876"},
		{in: []string{"localhost:9876"}, want: "127.0.0.1:9876"},
		{in: []string{"10.0.0.1:9876;10.0.0.2:9876"}, want: "10.0.0.2:9876"},
		{in: []string{"[::1]:9876"}, want: "[::1]:9876"},
		{in: []string{"http://MQ_INST_1_abc.cn-hangzhou.mq-internal.aliyuncs.com:8080"}, want: "http://MQ_INST_1_abc.cn-hangzhou.mq-internal.aliyuncs.com:8080"},
		{in: []string{"no-port"}, wantErr: true},
		{in: []string{"does-not-exist.invalid:9876"}, wantErr: true},
		{in: nil, wantErr: true},
	}
	for _, tt := range tests {
		got, err := ResolveNameServers(context.Background(), tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("ResolveNameServers(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || !slices.Contains(got, tt.want) {
			t.Errorf("ResolveNameServers(%q) = %v, %v; want it to hold %s", tt.in, got, err, tt.want)
		}
		// What comes out must pass the client's own check.
		if _, err := primitive.NewNamesrvAddr(got...); err != nil {
			t.Errorf("rocketmq-client-go refuses %v: %v", got, err)
		}
	}
}

func TestRoutingMessage(t *testing.T) {
	r := Routing{Topic: "presence", PerGroupTopics: true}
	tests := []struct {
		name             string
		entry            Entry
		topic, tag, keys string
		wantErr          bool
	}{
		{"grouped client", Entry{Seq: 1, Kind: KindEvent, Payload: []byte(`{"clientId":"GID_demo@@@d1","channelId":"ch1","eventType":"connect","time":1}`)}, "GID_demo_MQTT", "connect", "ch1", false},
		{"no group", Entry{Seq: 2, Kind: KindEvent, Payload: []byte(`{"clientId":"d1","channelId":"ch2","eventType":"tcpclean","time":1}`)}, "presence", "tcpclean", "ch2", false},
		{"group unfit for a topic name", Entry{Seq: 3, Kind: KindEvent, Payload: []byte(`{"clientId":"GID.x@@@d1","channelId":"ch3","eventType":"disconnect","time":1}`)}, "presence", "disconnect", "ch3", false},
		{"node event", Entry{Seq: 4, Kind: KindNode, Payload: []byte(`{"node":"n1","epoch":"e1","eventType":"node_start","time":1,"seq":1}`)}, "presence", "node", "n1 e1", false},
		{"not json", Entry{Seq: 5, Kind: KindEvent, Payload: []byte(`nope`)}, "", "", "", true},
		{"no event type", Entry{Seq: 6, Kind: KindEvent, Payload: []byte(`{"clientId":"d1","channelId":"ch2"}`)}, "", "", "", true},
		{"unknown kind", Entry{Seq: 7, Kind: "kind(9)", Payload: []byte(`{}`)}, "", "", "", true},
		{"channel id too long for RocketMQ's properties", Entry{Seq: 8, Kind: KindEvent, Payload: []byte(`{"clientId":"d1","channelId":"` + strings.Repeat("c", 20_000) + `","eventType":"connect","time":1}`)}, "", "", "", true},
	}
	for _, tt := range tests {
		out, err := r.message(tt.entry)
		if tt.wantErr {
			if err == nil {
				t.Errorf("%s: no error", tt.name)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		msg := out.primitive()
		if msg.Topic != tt.topic || msg.GetTags() != tt.tag || msg.GetKeys() != tt.keys || string(msg.Body) != string(tt.entry.Payload) {
			t.Errorf("%s: topic %q tag %q keys %q body %q", tt.name, msg.Topic, msg.GetTags(), msg.GetKeys(), msg.Body)
		}
	}
	fixed := Routing{Topic: "presence"}
	out, _ := fixed.message(tests[0].entry)
	if out.topic != "presence" {
		t.Errorf("without per-group topics a grouped client's event went to %q", out.topic)
	}
}
