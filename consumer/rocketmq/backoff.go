package rocketmq

import (
	"sync"
	"time"

	"github.com/presenced/presenced/presence"
)

// retryPause slows the consumer down while batches keep failing (the
// store is down): a failed batch is handed back for redelivery only after
// a pause that doubles with every consecutive failure, from 100 ms up to
// 5 s, and starts over after a success.
//
// Without it, every failed batch came straight back — through the retry
// topic, at once with a broker that has no delay levels (the test double's
// default) — and a few seconds of database outage could use up a
// message's MaxReconsumeTimes and send it to the dead-letter topic: an
// accepted event lost to presence. With the pause, exhausting 64
// redeliveries takes minutes of failures even without delay levels (days
// with RocketMQ's own), and a consumer facing a dead database stops
// hammering it and its broker.
type retryPause struct {
	mu       sync.Mutex
	backoff  presence.Backoff // consecutive failed batches, shared by the consumer's goroutines
	quit     chan struct{}
	quitOnce sync.Once
}

const (
	retryPauseMin = 100 * time.Millisecond
	retryPauseMax = 5 * time.Second
)

func newRetryPause() *retryPause {
	return &retryPause{backoff: presence.Backoff{Min: retryPauseMin, Max: retryPauseMax}, quit: make(chan struct{})}
}

// next records a failure and returns how long to pause.
func (p *retryPause) next() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.backoff.Next()
}

// success ends a run of failures.
func (p *retryPause) success() {
	p.mu.Lock()
	p.backoff.Reset()
	p.mu.Unlock()
}

// wait pauses for d, or less when the consumer stops.
func (p *retryPause) wait(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-p.quit:
	}
}

// stop cuts every pause short (the consumer is shutting down: batches
// turned away now are redelivered to whoever consumes next).
func (p *retryPause) stop() { p.quitOnce.Do(func() { close(p.quit) }) }
