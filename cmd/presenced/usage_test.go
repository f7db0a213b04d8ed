package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
)

func TestCommandLineConventions(t *testing.T) {
	tests := []struct {
		args       string
		wantCode   int
		wantOutput string // in stdout, stderr or the error
	}{
		{"--help", 0, "commands:"},
		{"help", 0, "consumer  apply events"},
		{"serve -h", 0, "-retention-every duration"},
		{"version", 0, "presenced dev (revision "},
		{"serve --retentio 1h", 2, "unknown flag --retentio; did you mean --retention?"},
		{"broker --node-leas 3s", 2, "did you mean --node-lease?"},
		// A command offers only the flags it uses.
		{"api --mqtt-addr :1883", 2, "presenced api does not use --mqtt-addr: it is a flag of serve and broker"},
		{"consumer --batch-size=5", 2, "presenced consumer does not use --batch-size: it is a flag of serve"},
		{"broker --database-url postgres://x", 2, "presenced broker does not use --database-url"},
		{"broker --api-read-tokens r1", 2, "presenced broker does not use --api-read-tokens: it is a flag of serve and api"},
		{"migrate --http-addr :9", 2, "presenced migrate does not use --http-addr: it is a flag of serve, broker, consumer and api"},
		{"serve --zzzzzzzz 1", 2, "unknown flag --zzzzzzzz (presenced serve -h lists the flags)"},
		{"serve --retention 5", 2, "--retention needs a unit like 30s"},
		{"serve --batch-size many", 2, `invalid value "many" for flag -batch-size`},
		{"serve --batch-size 0", 2, "--batch-size must be within 1..10000"},
		{"frobnicate", 2, `unknown command "frobnicate"`},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), strings.Fields(tt.args), env(nil), &stdout, &stderr)
			all := stdout.String() + stderr.String()
			if err != nil {
				all += err.Error()
			}
			if got := exitCode(err); got != tt.wantCode || !strings.Contains(all, tt.wantOutput) {
				t.Fatalf("exit %d, output %q; want exit %d and %q", got, all, tt.wantCode, tt.wantOutput)
			}
			if tt.wantCode == 2 && strings.Contains(all, "-shutdown-timeout duration") {
				t.Fatalf("a mistake printed every flag: %q", all)
			}
		})
	}
}

func TestEditDistance(t *testing.T) {
	cases := []struct {
		a, b string
		want int
	}{{"", "", 0}, {"retention", "retention", 0}, {"retentio", "retention", 1}, {"kitten", "sitting", 3}}
	for _, c := range cases {
		if got := editDistance(c.a, c.b); got != c.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

// TestHelpListsOnlyTheFlagsACommandUses: -h of api and consumer leaves out
// the broker's flags, broker's leaves out the database's and the API's,
// migrate's leaves out the listeners'.
func TestHelpListsOnlyTheFlagsACommandUses(t *testing.T) {
	for command, absent := range map[string][]string{
		"api":      {"-mqtt-addr", "-node ", "-batch-size", "-heartbeat-every", "-allow-anonymous"},
		"consumer": {"-mqtt-addr", "-batch-size", "-connect-timeout", "-api-read-tokens", "-feed-poll-interval", "-view-offline-cache"},
		"broker":   {"-database-url", "-node-grace", "-lease-check-every", "-api-", "-feed-poll-interval", "-view-offline-cache"},
		"migrate":  {"-http-addr", "-shutdown-timeout", "-api-", "-mqtt-addr"},
		"serve":    {},
	} {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), []string{command, "-h"}, env(nil), &stdout, &stderr); exitCode(err) != 0 {
			t.Fatalf("%s -h: %v", command, err)
		}
		help := stdout.String() + stderr.String()
		for _, flag := range absent {
			if strings.Contains(help, flag) {
				t.Errorf("%s -h offers %s, which it does not use", command, flag)
			}
		}
		if command != "migrate" && !strings.Contains(help, "-http-addr") {
			t.Errorf("%s -h lacks -http-addr:\n%s", command, help)
		}
	}
}

// TestHelpNeverPrintsSecretsFromTheEnvironment: -h prints each flag's
// default, and a PRESENCE_* variable sets the value of its flag; for a
// secret the value is used but never shown.
func TestHelpNeverPrintsSecretsFromTheEnvironment(t *testing.T) {
	secrets := map[string]string{
		"PRESENCE_DATABASE_URL":        "postgres://u:DBPASS@db.example/x",
		"PRESENCE_API_READ_TOKENS":     "READTOKEN",
		"PRESENCE_API_INGEST_TOKENS":   "INGESTTOKEN",
		"PRESENCE_ROCKETMQ_ACCESS_KEY": "ACCESSKEY",
		"PRESENCE_ROCKETMQ_SECRET_KEY": "SECRETKEY",
		"PRESENCE_WEBHOOK_URL":         "ops=https://hooks.example/services/HOOKTOKEN",
	}
	for _, command := range []string{"serve", "api", "consumer", "broker", "migrate"} {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), []string{command, "-h"}, env(secrets), &stdout, &stderr); exitCode(err) != 0 {
			t.Fatalf("%s -h: %v", command, err)
		}
		help := stdout.String() + stderr.String()
		for _, secret := range []string{"DBPASS", "READTOKEN", "INGESTTOKEN", "ACCESSKEY", "SECRETKEY", "HOOKTOKEN"} {
			if strings.Contains(help, secret) {
				t.Errorf("%s -h prints %s, set in the environment", command, secret)
			}
		}
	}
	delete(secrets, "PRESENCE_WEBHOOK_URL") // a hook would need its secret file too
	cfg, err := parseServeConfig("serve", nil, env(secrets), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DatabaseURL != secrets["PRESENCE_DATABASE_URL"] || cfg.API.ReadTokens != "READTOKEN" || cfg.API.IngestTokens != "INGESTTOKEN" {
		t.Fatalf("the environment's secrets were not used: database URL %q, tokens %q %q", cfg.DatabaseURL, cfg.API.ReadTokens, cfg.API.IngestTokens)
	}
}
