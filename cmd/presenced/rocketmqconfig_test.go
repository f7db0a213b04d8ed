package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

// TestAPIKicksThroughRocketMQOnlyWhenConfigured: presenced api runs
// without RocketMQ (kick answers 501), takes the control topic and kick
// wait when a name server is given, and refuses a kick wait out of bounds.
func TestAPIKicksThroughRocketMQOnlyWhenConfigured(t *testing.T) {
	cfg, err := parseServeConfig("api", nil, env(nil), io.Discard)
	if err != nil || cfg.RocketMQ.enabled() {
		t.Fatalf("api without a name server: enabled=%v, %v", cfg.RocketMQ.enabled(), err)
	}
	cfg, err = parseServeConfig("api", []string{"--rocketmq-namesrv", "127.0.0.1:9876", "--rocketmq-kick-wait", "5s"},
		env(map[string]string{"PRESENCE_ROCKETMQ_CONTROL_TOPIC": "ctl"}), io.Discard)
	if err != nil || !cfg.RocketMQ.enabled() || cfg.RocketMQ.ControlTopic != "ctl" || cfg.RocketMQ.KickWait != 5*time.Second {
		t.Fatalf("api with RocketMQ: %+v, %v", cfg.RocketMQ, err)
	}
	for _, wait := range []string{"0s", "2m"} {
		_, err := parseServeConfig("api", []string{"--rocketmq-namesrv", "127.0.0.1:9876", "--rocketmq-kick-wait", wait}, env(nil), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "--rocketmq-kick-wait") {
			t.Errorf("--rocketmq-kick-wait %s: %v, want refused", wait, err)
		}
	}
	if _, err := parseServeConfig("broker", nil, env(nil), io.Discard); err == nil || !strings.Contains(err.Error(), "--rocketmq-namesrv is required") {
		t.Fatalf("broker without a name server: %v, want refused", err)
	}
}
