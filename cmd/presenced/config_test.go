package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestFlagsWinOverEnvironment(t *testing.T) {
	cfg, err := parseServeConfig("serve", []string{"--http-addr", "127.0.0.1:9"},
		env(map[string]string{"PRESENCE_HTTP_ADDR": "127.0.0.1:7", "PRESENCE_MQTT_ADDR": "127.0.0.1:8", "PRESENCE_NODE_LEASE": "10s"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != "127.0.0.1:9" || cfg.MQTTAddr != "127.0.0.1:8" || cfg.NodeLease != 10*time.Second {
		t.Fatalf("config %+v: want the flag over the environment, and the environment over defaults", cfg)
	}
}

func TestConfigErrorsNameTheSetting(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"bad env duration", nil, map[string]string{"PRESENCE_SHUTDOWN_TIMEOUT": "soon"}, `PRESENCE_SHUTDOWN_TIMEOUT="soon" is not a duration`},
		{"bad env int", nil, map[string]string{"PRESENCE_OUTBOX_MAX_MB": "many"}, `PRESENCE_OUTBOX_MAX_MB="many" is not an integer`},
		{"outbox size", []string{"--outbox-max-mb", "0"}, nil, "--outbox-max-mb must be at least 1"},
		{"disk reserve", []string{"--min-free-disk-mb", "-1"}, nil, "--min-free-disk-mb must be 0 (automatic) or more"},
		{"restart attempts", []string{"--postgres-restart-attempts", "0"}, nil, "--postgres-restart-attempts must be at least 1"},
		{"anonymous", []string{"--allow-anonymous", "maybe"}, nil, "--allow-anonymous must be auto, true or false"},
		{"heartbeat vs lease", []string{"--node-lease", "2s", "--heartbeat-every", "5s"}, nil, "--heartbeat-every must be positive and at most half of --node-lease"},
		{"packet size", []string{"--mqtt-max-packet-kib", "0"}, nil, "--mqtt-max-packet-kib must be within"},
		{"stray argument", []string{"extra"}, nil, `unexpected argument "extra"`},
		{"short retention", []string{"--retention", "5m"}, nil, "--retention must be 0 (keep everything) or at least 1h0m0s"},
		{"retention period", []string{"--retention-every", "0s"}, nil, "--retention-every must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseServeConfig("serve", tt.args, env(tt.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestRetentionFlagsOnlyWhereThereIsADatabase(t *testing.T) {
	cfg, err := parseServeConfig("api", []string{"--retention", "0", "--rejected-retention", "48h"}, env(nil), io.Discard)
	if err != nil || cfg.Retention.Channels != 0 || cfg.Retention.Rejected != 48*time.Hour {
		t.Fatalf("api --retention 0 --rejected-retention 48h: %+v, %v", cfg.Retention, err)
	}
	base := []string{"--rocketmq-namesrv", "127.0.0.1:9876"}
	_, err = parseServeConfig("broker", append(base, "--retention", "24h"), env(nil), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "unknown flag --retention ") {
		t.Fatalf("broker --retention: %v, want the flag refused (a broker has no database)", err)
	}
}

func TestRocketMQModesNeedANameServer(t *testing.T) {
	_, err := parseServeConfig("consumer", nil, env(nil), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--rocketmq-namesrv is required") {
		t.Fatalf("consumer without a name server: %v", err)
	}
	cfg, err := parseServeConfig("broker", []string{"--rocketmq-per-group-topics"}, env(map[string]string{"PRESENCE_ROCKETMQ_NAMESRV": "127.0.0.1:9876, 127.0.0.2:9876"}), io.Discard)
	if err != nil || !cfg.RocketMQ.PerGroupTopics || len(cfg.RocketMQ.nameServers()) != 2 {
		t.Fatalf("broker config %+v, %v", cfg.RocketMQ, err)
	}
	if topics := cfg.RocketMQ.consumeTopics(); len(topics) != 1 || topics[0] != "presenced_events" {
		t.Fatalf("default consume topics %v", topics)
	}
}

func TestUnknownCommand(t *testing.T) {
	err := run(t.Context(), []string{"frobnicate"}, env(nil), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `unknown command "frobnicate"`) {
		t.Fatalf("run(frobnicate) = %v", err)
	}
}

// TestDatabaseURLFromAFile: --database-url-file (or its PRESENCE_*
// variable) supplies the URL, so a password in it need not be on the
// command line; given both ways, the start stops.
func TestDatabaseURLFromAFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "database-url")
	const url = "postgres://presenced:S3CRET@db.example/presenced"
	if err := os.WriteFile(path, []byte(url+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
	}{
		{[]string{"--database-url-file", path}, nil},
		{nil, map[string]string{"PRESENCE_DATABASE_URL_FILE": path}},
	} {
		cfg, err := parseServeConfig("api", tc.args, env(tc.env), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.DatabaseURL != url {
			t.Fatalf("database URL %q, want the file's", cfg.DatabaseURL)
		}
	}
	_, err := parseServeConfig("api", []string{"--database-url-file", path, "--database-url", "postgres://other/x"}, env(nil), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "give the URL one way only") {
		t.Fatalf("both ways: %v, want a refusal", err)
	}
}
