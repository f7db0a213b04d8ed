package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore"
)

// Bounds of the record of refused connects: a flood of bad logins must
// hold neither memory nor the store.
const (
	refusedEvery   = 10 * time.Second // at most one record per client id this often
	refusedClients = 10_000           // client ids remembered for that; the memory is cleared when full
	refusedQueue   = 1024             // refusals waiting to be written; more are dropped
	refusedBatch   = 100              // refusals written per statement (or RocketMQ request)
)

// refusedRecorder keeps the broker's refused connects
// (mqttbroker.Config.OnRefused) — for the store in serve mode, for
// RocketMQ in broker mode: rate-limited per client id, queued within a
// bound, written in batches. What does not fit is dropped and counted:
// the record explains failures, it is not evidence of presence, and
// nothing was acknowledged for it (so, unlike lifecycle events, it is
// never durable before anything).
type refusedRecorder struct {
	write     func(ctx context.Context, batch []presence.RefusedConnect) error
	writeFail string // the dropped{why} label of a failed write
	log       *slog.Logger
	queue     chan presence.RefusedConnect
	now       func() time.Time
	written   prometheus.Counter
	dropped   *prometheus.CounterVec

	mu   sync.Mutex
	last map[string]time.Time
}

// newRefusedRecorder records refused connects in the store (serve).
func newRefusedRecorder(store *pgstore.Store, reg prometheus.Registerer, log *slog.Logger) *refusedRecorder {
	return newRefusedQueue(store.RecordRefused, "store", "Refused CONNECTs stored for GET /clients/{id}/refused.", reg, log)
}

// newRefusedForwarder sends refused connects to RocketMQ (broker), where
// presenced consumer stores them; send is rocketmq.Publisher.SendRefused
// bound to the events topic.
func newRefusedForwarder(send func(context.Context, []presence.RefusedConnect) error, reg prometheus.Registerer, log *slog.Logger) *refusedRecorder {
	return newRefusedQueue(send, "send", "Refused CONNECTs sent to RocketMQ, for presenced consumer to store.", reg, log)
}

func newRefusedQueue(write func(context.Context, []presence.RefusedConnect) error, writeFail, help string, reg prometheus.Registerer, log *slog.Logger) *refusedRecorder {
	r := &refusedRecorder{write: write, writeFail: writeFail, log: log.With("component", "refused connects"), now: time.Now,
		queue: make(chan presence.RefusedConnect, refusedQueue), last: make(map[string]time.Time),
		written: prometheus.NewCounter(prometheus.CounterOpts{Name: "presenced_refused_connects_recorded_total", Help: help}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "presenced_refused_connects_dropped_total",
			Help: "Refused CONNECTs not recorded: why=rate (another of the client id within 10s), full (queue full), invalid (no valid client id), " + writeFail + " (the write failed)."}, []string{"why"}),
	}
	for _, why := range []string{"rate", "full", "invalid", writeFail} {
		r.dropped.WithLabelValues(why)
	}
	reg.MustRegister(r.written, r.dropped)
	return r
}

// offer is the broker's OnRefused: it never blocks.
func (r *refusedRecorder) offer(rc presence.RefusedConnect) {
	if presence.ValidateClientID(rc.ClientID) != nil {
		r.dropped.WithLabelValues("invalid").Inc() // could never be asked for
		return
	}
	now := r.now()
	r.mu.Lock()
	if at, ok := r.last[rc.ClientID]; ok && now.Sub(at) < refusedEvery {
		r.mu.Unlock()
		r.dropped.WithLabelValues("rate").Inc()
		return
	}
	if len(r.last) >= refusedClients {
		clear(r.last)
	}
	r.last[rc.ClientID] = now
	r.mu.Unlock()
	select {
	case r.queue <- rc:
	default:
		r.dropped.WithLabelValues("full").Inc()
	}
}

// component writes the queued refusals until the process stops.
func (r *refusedRecorder) component() component {
	return component{name: "refused connects", run: func(ctx context.Context) error {
		batch := make([]presence.RefusedConnect, 0, refusedBatch)
		for {
			select {
			case <-ctx.Done():
				return nil
			case rc := <-r.queue:
				batch = append(batch[:0], rc)
			}
		fill:
			for len(batch) < refusedBatch {
				select {
				case rc := <-r.queue:
					batch = append(batch, rc)
				default:
					break fill
				}
			}
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := r.write(wctx, batch)
			cancel()
			if err != nil {
				r.dropped.WithLabelValues(r.writeFail).Add(float64(len(batch)))
				r.log.Warn("refused connects not recorded", "count", len(batch), "err", err)
				continue
			}
			r.written.Add(float64(len(batch)))
		}
	}}
}
