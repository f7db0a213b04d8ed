package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestAPIFlagsFromEnvironment(t *testing.T) {
	cfg, err := parseServeConfig("api", []string{"--api-ingest-tokens", "w1"}, env(map[string]string{
		"PRESENCE_API_READ_TOKENS":     " r1, r2 ,,",
		"PRESENCE_API_INGEST_TOKENS":   "ignored: the flag wins",
		"PRESENCE_API_SSE_HEARTBEAT":   "5s",
		"PRESENCE_API_MAX_BODY_BYTES":  "1024",
		"PRESENCE_FEED_POLL_INTERVAL":  "250ms",
		"PRESENCE_API_REQUEST_TIMEOUT": "3s",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	api := cfg.API
	if !slices.Equal(tokens(api.ReadTokens), []string{"r1", "r2"}) || !slices.Equal(tokens(api.IngestTokens), []string{"w1"}) ||
		api.Heartbeat != 5*time.Second || api.MaxBodyBytes != 1024 || api.FeedPoll != 250*time.Millisecond ||
		api.RequestTimeout != 3*time.Second || api.MaxStreams != 1000 || api.StreamRing != 10_000 ||
		api.StreamWriteTimeout != 10*time.Second || api.Open {
		t.Fatalf("api config %+v", api)
	}
}

func TestAPIFlagErrors(t *testing.T) {
	for args, want := range map[string]string{
		"--api-max-in-flight 0":      "--api-max-in-flight must be at least 1",
		"--api-sse-heartbeat 0s":     "--api-sse-heartbeat must be positive",
		"--feed-poll-interval -1s":   "--feed-poll-interval must be positive",
		"--api-max-body-bytes -5":    "--api-max-body-bytes must be at least 1",
		"--api-request-timeout 0s":   "--api-request-timeout must be positive",
		"--api-sse-write-timeout 0s": "--api-sse-write-timeout must be positive",
	} {
		_, err := parseServeConfig("api", strings.Fields(args), env(nil), io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", args, err, want)
		}
	}
}

// writeFile writes content to a new file in a temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAPITokenFiles(t *testing.T) {
	readFile := writeFile(t, "read", "r1\nr2 , r3  \r\n\n   \n")
	ingestFile := writeFile(t, "ingest", "w1,w2\n")
	cfg, err := parseServeConfig("api", []string{"--api-read-tokens", "r0", "--api-read-tokens-file", readFile},
		env(map[string]string{"PRESENCE_API_INGEST_TOKENS_FILE": ingestFile}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.API.readTokens(); !slices.Equal(got, []string{"r0", "r1", "r2", "r3"}) {
		t.Errorf("read tokens %q", got)
	}
	if got := cfg.API.ingestTokens(); !slices.Equal(got, []string{"w1", "w2"}) {
		t.Errorf("ingest tokens %q", got)
	}
	// Printed, the config shows where the tokens are, not what they are.
	if printed := fmt.Sprintf("%v %+v", cfg.API.ReadTokensFile, cfg.API); strings.Contains(printed, "r2") || !strings.Contains(printed, readFile) {
		t.Errorf("printed config %s", printed)
	}
}

func TestAPITokenFileErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	empty := writeFile(t, "empty", "\n \n")
	commas := writeFile(t, "commas", ",,\n,")
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want []string
	}{
		{[]string{"--api-read-tokens-file", missing}, nil, []string{"api-read-tokens-file", missing, "no such file"}},
		{nil, map[string]string{"PRESENCE_API_INGEST_TOKENS_FILE": missing}, []string{"PRESENCE_API_INGEST_TOKENS_FILE", missing}},
		{[]string{"--api-ingest-tokens-file", empty}, nil, []string{"api-ingest-tokens-file", empty, "is empty"}},
		{[]string{"--api-read-tokens-file", commas}, nil, []string{"--api-read-tokens-file", commas, "holds no token"}},
		{[]string{"--api-read-tokens-file", t.TempDir()}, nil, []string{"api-read-tokens-file"}},
	} {
		_, err := parseServeConfig("serve", tc.args, env(tc.env), io.Discard)
		for _, want := range tc.want {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%v %v: error %v, want it to name %q", tc.args, tc.env, err, want)
			}
		}
	}
}

// TestAPIAccessOffLoopback: without tokens the API may listen on loopback
// only, unless --api-open=true says so; the refusal names the flags.
func TestAPIAccessOffLoopback(t *testing.T) {
	tokenFile := writeFile(t, "tokens", "secret-token\n")
	for _, tc := range []struct {
		addr string
		args []string
		ok   bool
	}{
		{":8080", nil, false},
		{"0.0.0.0:8080", nil, false},
		{"[::]:8080", nil, false},
		{"192.0.2.10:8080", nil, false},
		{"127.0.0.1:8080", nil, true},
		{"127.0.0.2:0", nil, true},
		{"[::1]:8080", nil, true},
		{"localhost:8080", nil, true},
		{":8080", []string{"--api-open=true"}, true},
		{":8080", []string{"--api-open=false"}, false},
		{":8080", []string{"--api-read-tokens", "r1"}, true},
		{":8080", []string{"--api-read-tokens-file", tokenFile}, true},
		{":8080", []string{"--api-ingest-tokens", "w1"}, true},
	} {
		cfg, err := parseServeConfig("serve", append([]string{"--http-addr", tc.addr}, tc.args...), env(nil), io.Discard)
		if err != nil {
			t.Fatalf("%s %v: %v", tc.addr, tc.args, err)
		}
		err = cfg.API.checkAccess(cfg.HTTPAddr)
		if tc.ok != (err == nil) {
			t.Errorf("--http-addr %s %v: checkAccess = %v, want ok=%v", tc.addr, tc.args, err, tc.ok)
			continue
		}
		if err != nil {
			if code := exitCode(err); code != 2 {
				t.Errorf("--http-addr %s: refusal exits %d, want 2 (settings that contradict each other)", tc.addr, code)
			}
			for _, flag := range []string{"--api-read-tokens", "--api-read-tokens-file", "--api-open=true", tc.addr} {
				if !strings.Contains(err.Error(), flag) {
					t.Errorf("--http-addr %s: refusal %q does not name %s", tc.addr, err, flag)
				}
			}
		}
	}
	// The environment says it as well as the flag.
	cfg, err := parseServeConfig("api", nil, env(map[string]string{"PRESENCE_HTTP_ADDR": ":9", "PRESENCE_API_OPEN": "true"}), io.Discard)
	if err != nil || cfg.API.checkAccess(cfg.HTTPAddr) != nil {
		t.Fatalf("PRESENCE_API_OPEN=true: %v / %v", err, cfg.API.checkAccess(cfg.HTTPAddr))
	}
}

func TestRocketMQSecretKeyFile(t *testing.T) {
	keyFile := writeFile(t, "key", "s3cr3t-key \n")
	base := []string{"--rocketmq-namesrv", "127.0.0.1:9876"}
	cfg, err := parseServeConfig("broker", append(base, "--rocketmq-secret-key-file", keyFile), env(nil), io.Discard)
	if err != nil || cfg.RocketMQ.SecretKey != "s3cr3t-key" {
		t.Fatalf("secret key %q, %v; want it read from the file", cfg.RocketMQ.SecretKey, err)
	}
	cfg, err = parseServeConfig("consumer", base, env(map[string]string{"PRESENCE_ROCKETMQ_SECRET_KEY_FILE": keyFile}), io.Discard)
	if err != nil || cfg.RocketMQ.SecretKey != "s3cr3t-key" {
		t.Fatalf("secret key from PRESENCE_ROCKETMQ_SECRET_KEY_FILE %q, %v", cfg.RocketMQ.SecretKey, err)
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--rocketmq-secret-key-file", keyFile, "--rocketmq-secret-key", "other"}, nil, "both set"},
		{[]string{"--rocketmq-secret-key", "other", "--rocketmq-secret-key-file", keyFile}, nil, "--rocketmq-secret-key is set too"},
		{[]string{"--rocketmq-secret-key-file", keyFile}, map[string]string{"PRESENCE_ROCKETMQ_SECRET_KEY": "other"}, "--rocketmq-secret-key is set too"},
		{[]string{"--rocketmq-secret-key-file", keyFile + ".missing"}, nil, "rocketmq-secret-key-file"},
	} {
		_, err := parseServeConfig("broker", append(base, tc.args...), env(tc.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: error %v, want %q", tc.args, tc.env, err, tc.want)
		} else if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("error %q reveals the secret", err)
		}
	}
}

func TestBuildInfoMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newBuildInfo("1.2.3"))
	families, err := reg.Gather()
	if err != nil || len(families) != 1 || families[0].GetName() != "presenced_build_info" {
		t.Fatalf("gathered %v, %v", families, err)
	}
	m := families[0].GetMetric()[0]
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if m.GetGauge().GetValue() != 1 || labels["version"] != "1.2.3" || labels["goversion"] != runtime.Version() {
		t.Fatalf("presenced_build_info %v = %v", labels, m.GetGauge().GetValue())
	}
}

func TestServeRefusesOpenAPIOffLoopback(t *testing.T) {
	for _, mode := range []string{"serve", "api"} {
		err := run(context.Background(), []string{mode, "--http-addr", ":8080", "--data-dir", t.TempDir()}, env(nil), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "--api-read-tokens") || !strings.Contains(err.Error(), "--api-open") {
			t.Fatalf("%s --http-addr :8080 without tokens: %v, want a refusal naming --api-read-tokens and --api-open", mode, err)
		}
	}
}

// TestOpenAPIServesOnlyLoopbackHostNames: while the API is open because it
// listens on loopback, it serves host names that mean this machine without
// DNS; with tokens, or opened deliberately, every name.
func TestOpenAPIServesOnlyLoopbackHostNames(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1": true, "127.8.9.10": true, "::1": true, "::ffff:127.0.0.1": true,
		"localhost": true, "LOCALHOST.": true, "app.localhost": true,
		"": false, "0.0.0.0": false, "192.0.2.7": false, "evil.example": false, "localhost.evil.example": false,
	} {
		if got := loopbackHostname(host); got != want {
			t.Errorf("loopbackHostname(%q) = %v, want %v", host, got, want)
		}
	}
	if (apiConfig{}).hostAllowed() == nil {
		t.Error("an open API serves every host name")
	}
	if (apiConfig{Open: true}).hostAllowed() != nil || (apiConfig{ReadTokens: "t"}).hostAllowed() != nil {
		t.Error("an API with tokens, or opened with --api-open, refuses host names")
	}
}
