package main

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/presenced/presenced/presence"
)

// testHooks are fault injections for end-to-end tests, set only through
// environment variables (never flags, so they stay out of the usage text):
//
//	PRESENCE_TEST_DROP_TCPCLEAN=<client id prefix>  the broker loses the tcpclean events of matching clients
//	PRESENCE_TEST_CLOCK_SKEW=<duration>             the broker's clock runs this far off (e.g. -5m)
//
// Each one in use is logged as a warning at start-up.
type testHooks struct {
	dropTCPCleanPrefix string
	clockSkew          time.Duration
}

func parseTestHooks(getenv func(string) string) (testHooks, error) {
	h := testHooks{dropTCPCleanPrefix: getenv("PRESENCE_TEST_DROP_TCPCLEAN")}
	if v := getenv("PRESENCE_TEST_CLOCK_SKEW"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return h, fmt.Errorf("PRESENCE_TEST_CLOCK_SKEW=%q is not a duration", v)
		}
		h.clockSkew = d
	}
	return h, nil
}

// active describes the hooks in use, for the start-up warning.
func (h testHooks) active() []any {
	var attrs []any
	if h.dropTCPCleanPrefix != "" {
		attrs = append(attrs, "drop_tcpclean_prefix", h.dropTCPCleanPrefix)
	}
	if h.clockSkew != 0 {
		attrs = append(attrs, "clock_skew", h.clockSkew.String())
	}
	return attrs
}

// now is the broker's clock, skewed when the hook says so.
func (h testHooks) now() time.Time { return time.Now().Add(h.clockSkew) }

// dropTCPClean reports whether the broker should lose this tcpclean.
func (h testHooks) dropTCPClean(e presence.Event) bool {
	return h.dropTCPCleanPrefix != "" && strings.HasPrefix(e.ClientID, h.dropTCPCleanPrefix)
}

// loadTestHooks parses the test hooks and, when any is set, says so loudly:
// a production process must never run with them unnoticed.
func loadTestHooks(getenv func(string) string, log *slog.Logger) (testHooks, error) {
	hooks, err := parseTestHooks(getenv)
	if err != nil {
		return testHooks{}, err
	}
	if attrs := hooks.active(); len(attrs) > 0 {
		log.Warn("TEST HOOKS ACTIVE: this process injects faults", attrs...)
	}
	return hooks, nil
}
