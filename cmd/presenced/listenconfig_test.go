package main

import (
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/presenced/presenced/mqttbroker"
)

func TestListenFlags(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		wantErr string // "": valid
	}{
		{nil, ""},
		{[]string{"--mqtt-ws-addr", "127.0.0.1:9001"}, ""},
		{[]string{"--mqtt-proxy-protocol", "v2", "--mqtt-proxy-trusted", "10.0.0.0/8, 192.0.2.1,::1"}, ""},
		{[]string{"--mqtt-ws-addr", ":9001", "--mqtt-ws-proxy-protocol", "any", "--mqtt-proxy-trusted", "10.0.0.1"}, ""},
		{[]string{"--mqtt-proxy-protocol", "v2"}, "needs --mqtt-proxy-trusted"},
		{[]string{"--mqtt-proxy-protocol", "yes", "--mqtt-proxy-trusted", "10.0.0.1"}, "must be off, v1, v2 or any"},
		{[]string{"--mqtt-proxy-protocol", "v1", "--mqtt-proxy-trusted", "10.0.0.300"}, "neither an address nor a CIDR"},
		{[]string{"--mqtt-proxy-trusted", "10.0.0.1"}, "has no effect"},
		{[]string{"--mqtt-ws-proxy-protocol", "v1", "--mqtt-proxy-trusted", "10.0.0.1"}, "needs --mqtt-ws-addr"},
		{[]string{"--mqtt-wss-proxy-protocol", "v2", "--mqtt-proxy-trusted", "10.0.0.1"}, "--mqtt-wss-proxy-protocol needs --mqtt-wss-addr"},
		{[]string{"--mqtt-ws-addr", ":9001", "--mqtt-ws-path", "mqtt"}, "must start with /"},
	} {
		_, err := parseServeConfig("serve", tc.args, func(string) string { return "" }, io.Discard)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.wantErr)
		}
	}
	cfg, err := parseServeConfig("broker", nil, func(name string) string {
		return map[string]string{"PRESENCE_MQTT_WS_ADDR": "127.0.0.1:9001", "PRESENCE_MQTT_WS_PATH": "/ws", "PRESENCE_ROCKETMQ_NAMESRV": "127.0.0.1:9876"}[name]
	}, io.Discard)
	if err != nil || cfg.Listen.WSAddr != "127.0.0.1:9001" || cfg.Listen.WSPath != "/ws" {
		t.Fatalf("broker from environment: %+v, %v", cfg.Listen, err)
	}
}

func TestAnonymousBehindProxyOrWebSocket(t *testing.T) {
	loopback := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}
	for _, tc := range []struct {
		name    string
		cfg     listenConfig
		setting string
		want    bool
	}{
		{"plain loopback", listenConfig{}, "auto", true},
		{"proxy protocol", listenConfig{ProxyProtocol: "v2", ProxyTrusted: "127.0.0.1"}, "auto", false},
		{"proxy protocol, explicitly allowed", listenConfig{ProxyProtocol: "v2", ProxyTrusted: "127.0.0.1"}, "true", true},
	} {
		front := newMQTTFront(tc.cfg, 1024, slog.New(slog.DiscardHandler))
		bc := mqttbroker.Config{AllowAnonymous: allowAnonymous(tc.setting, loopback)}
		front.configureBroker(&bc, tc.setting)
		if bc.AllowAnonymous != tc.want {
			t.Errorf("%s: AllowAnonymous %v, want %v", tc.name, bc.AllowAnonymous, tc.want)
		}
		// While clients are admitted without credentials, web pages of other
		// sites may not connect over WebSocket; pages of this machine may.
		if got := front.wsOriginAllowed("evil.example"); got == tc.want {
			t.Errorf("%s: a page of another site allowed %v with AllowAnonymous %v", tc.name, got, tc.want)
		}
		if !front.wsOriginAllowed("localhost") {
			t.Errorf("%s: a page of this machine refused", tc.name)
		}
	}
	// Before the broker is configured (the listeners already serve
	// handshakes), as if anonymous.
	if newMQTTFront(listenConfig{}, 1024, slog.New(slog.DiscardHandler)).wsOriginAllowed("evil.example") {
		t.Error("a page of another site allowed before the broker's access was decided")
	}
}
