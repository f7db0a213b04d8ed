package webhook_test

import (
	"testing"

	"github.com/presenced/presenced/consumer/webhook"
)

// TestTargetKeepsTokensOutOfLogs: a hook's URL may carry its token in the
// user information, the path (Slack, Discord) or the query; logs name only
// where deliveries go.
func TestTargetKeepsTokensOutOfLogs(t *testing.T) {
	for url, want := range map[string]string{
		"https://hooks.example/services/T000/B000/TOKEN":  "https://hooks.example",
		"https://user:TOKEN@hooks.example:8443/x?k=TOKEN": "https://hooks.example:8443",
		"http://10.0.0.5/hook":                            "http://10.0.0.5",
	} {
		if got := (&webhook.Hook{URL: url}).Target(); got != want {
			t.Errorf("Target of %s = %q, want %q", url, got, want)
		}
	}
}
