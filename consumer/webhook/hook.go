// Package webhook delivers client presence changes to HTTP receivers.
//
// Each hook follows the store's change feed from its own durable cursor:
// it reads a batch of changed channels and of node presence changes (a
// broker node gone silent or back: NodeChange), turns them into client
// presence changes, POSTs them as one signed JSON delivery, and moves the
// cursor past them only after a 2xx answer. Failed attempts are retried
// with backoff, forever, with the same batch; so delivery is at least
// once and in feed order, and the backlog of a hook that is down is the
// feed itself: the only memory a hook holds is its one batch. A lease in
// the store lets one process at a time deliver a hook, whichever of
// several serve/api processes holds it.
package webhook

import (
	"net/url"
	"time"
)

// Hook is one receiver.
type Hook struct {
	// Name identifies the hook in the store (its cursor), in delivery ids,
	// logs and metrics; keep it stable.
	Name string
	// URL receives the POSTs; it may carry credentials, so it is never
	// logged (see Target).
	URL string
	// Secret signs every delivery (see Signature); never logged.
	Secret []byte
	// Timeout bounds one attempt, response included.
	Timeout time.Duration
	// Batch is the most changes in one delivery (and in memory).
	Batch int
	// RetryMin and RetryMax bound the backoff between failed attempts.
	RetryMin, RetryMax time.Duration

	stats Stats
}

// Target is what logs say of the hook's URL: scheme and host only. User
// information, path and query may each hold a token (Slack- and
// Discord-style hooks carry theirs in the path).
func (h *Hook) Target() string {
	u, err := url.Parse(h.URL)
	if err != nil {
		return "(invalid url)"
	}
	return u.Scheme + "://" + u.Host
}

// Stats returns the hook's counters.
func (h *Hook) Stats() *Stats { return &h.stats }
