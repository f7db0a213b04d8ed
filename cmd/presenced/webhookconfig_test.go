package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestWebhookFlags(t *testing.T) {
	secret := writeFile(t, "ops.secret", "hook-secret-value\n")
	cfg, err := parseServeConfig("serve", []string{"--webhook-url", "ops=https://hooks.example.com/p?token=t",
		"--webhook-secret-file", "ops=" + secret, "--webhook-timeout", "2s"}, env(map[string]string{
		"PRESENCE_WEBHOOK_BATCH": "50",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	w := cfg.Webhooks
	if len(w.URLs) != 1 || w.URLs[0].name != "ops" || w.secrets["ops"] != "hook-secret-value" || w.Batch != 50 ||
		w.Timeout != 2*time.Second || w.Lease != 30*time.Second {
		t.Fatalf("webhook config %+v", w)
	}
	if strings.Contains(w.SecretFiles.String(), "hook-secret-value") {
		t.Fatal("the flag's text shows the secret")
	}
}

func TestWebhookFlagErrors(t *testing.T) {
	secret := writeFile(t, "ops.secret", "hook-secret-value")
	for args, want := range map[string]string{
		"--webhook-url ops=https://h/p":                                               "--webhook-url ops has no secret",
		"--webhook-url ops=ftp://h/p --webhook-secret-file ops=" + secret:             "want an http:// or https:// URL",
		"--webhook-url o/ps=https://h/p":                                              "the name must be",
		"--webhook-url ops=https://h/p --webhook-secret-file x=" + secret:             "--webhook-secret-file x: no --webhook-url of that name",
		"--webhook-url ops=https://h/p --webhook-secret-file ops=/nonexistent/secret": "--webhook-secret-file ops: open /nonexistent/secret",
		"--webhook-url ops": "want name=value",
		"--webhook-url ops=https://h/p --webhook-secret-file ops=" + secret + " --webhook-lease 5s": "must be at least twice --webhook-timeout",
		"--webhook-batch 0": "--webhook-batch must be within 1..1000",
	} {
		_, err := parseServeConfig("serve", strings.Fields(args), env(nil), io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", args, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "hook-secret-value") {
			t.Errorf("%s: the error shows the secret: %v", args, err)
		}
	}
	if _, err := parseServeConfig("broker", []string{"--webhook-url", "ops=https://h/p"}, env(nil), io.Discard); err == nil {
		t.Error("presenced broker took --webhook-url")
	}
}
