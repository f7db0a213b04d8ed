package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// maxResponseBytes is the most of a response body read (and discarded):
// enough to keep the connection reusable, never a receiver's to inflate.
const maxResponseBytes = 64 << 10

// statusError is a response other than 2xx.
type statusError struct{ code int }

func (e *statusError) Error() string { return fmt.Sprintf("receiver answered %d", e.code) }

// post sends one delivery attempt: signed, within hook.Timeout. Only a 2xx
// answer delivers it; redirects are not followed (a 3xx is a failure).
func post(ctx context.Context, client *http.Client, hook *Hook, d Delivery, now time.Time) error {
	body, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode delivery: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, hook.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	ts := now.Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "presenced-webhook")
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Signature(hook.Secret, ts, body))
	req.Header.Set(HeaderDelivery, d.ID)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &statusError{code: resp.StatusCode}
	}
	return nil
}

// newHTTPClient is the client of every hook: no redirects, and no
// timeout of its own (each attempt has the hook's).
func newHTTPClient() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// failureKind names a failed attempt for logs and metrics: the receiver's
// status, a timeout, or another transport error.
func failureKind(err error) string {
	var se *statusError
	switch {
	case errors.As(err, &se):
		return "status"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "transport"
}
