package consumer

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/presenced/presenced/presence"
)

// NodeReporter is the broker side of node liveness: it numbers every
// lifecycle event of this broker process (NodeSeq), announces the process
// (node_start), heartbeats within its lease, periodically reports the
// complete set of channels the broker holds (node_channels, for
// reconciliation), and says goodbye on a clean stop (node_stop). Its
// reports travel through the same transport as the lifecycle events.
type NodeReporter struct {
	Node       string
	Epoch      string
	Generation uint64
	// Lease is how long the consumer may wait for the next heartbeat before
	// it answers this node's clients as "unknown".
	Lease time.Duration
	// HeartbeatEvery must be well under Lease; default Lease/3.
	HeartbeatEvery time.Duration
	// ReconcileEvery is the period of channel-set reports; a tcpclean lost
	// anywhere is repaired within one period.
	ReconcileEvery time.Duration
	// OpenChannels returns the channels the broker holds. The broker must
	// count a channel as held before it emits the channel's connect, so a
	// report never misses a channel whose connect it numbered before.
	OpenChannels func() []string
	// Emit hands a node event to the transport.
	Emit func(presence.NodeEvent) error
	Log  *slog.Logger
	Now  func() time.Time

	seq atomic.Uint64
}

// Stamp wraps the broker's event sink so that every lifecycle event gets
// the next number of this process.
func (r *NodeReporter) Stamp(sink func(presence.Event) error) func(presence.Event) error {
	return func(e presence.Event) error {
		e.NodeSeq = r.seq.Add(1)
		return sink(e)
	}
}

func (r *NodeReporter) event(t presence.NodeEventType) presence.NodeEvent {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	return presence.NodeEvent{
		Node: r.Node, Epoch: r.Epoch, Generation: r.Generation, Type: t,
		Time: now().UnixMilli(), Seq: r.seq.Add(1), LeaseMillis: r.Lease.Milliseconds(),
	}
}

// Start announces the process. Call it before the broker accepts clients,
// so the consumer fences the channels of earlier epochs first.
func (r *NodeReporter) Start() error { return r.Emit(r.event(presence.NodeStart)) }

// Run heartbeats and reports channel sets until ctx ends.
func (r *NodeReporter) Run(ctx context.Context) error {
	every := r.HeartbeatEvery
	if every <= 0 {
		every = r.Lease / 3
	}
	heartbeat := time.NewTicker(every)
	defer heartbeat.Stop()
	var reconcile <-chan time.Time
	if r.ReconcileEvery > 0 && r.OpenChannels != nil {
		t := time.NewTicker(r.ReconcileEvery)
		defer t.Stop()
		reconcile = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-heartbeat.C:
			r.emit(r.event(presence.NodeHeartbeat))
		case <-reconcile:
			r.emit(r.Report())
		}
	}
}

// Report returns the node's channel set, numbered after every event
// emitted so far: the number is taken before the set is read.
func (r *NodeReporter) Report() presence.NodeEvent {
	ev := r.event(presence.NodeChannels)
	ev.Channels = r.OpenChannels()
	if ev.Channels == nil {
		ev.Channels = []string{}
	}
	return ev
}

// Stop says goodbye. Call it after the broker closed its connections and
// emitted their tcpclean events.
func (r *NodeReporter) Stop() error { return r.Emit(r.event(presence.NodeStop)) }

func (r *NodeReporter) emit(e presence.NodeEvent) {
	if err := r.Emit(e); err != nil && r.Log != nil {
		r.Log.Warn("node event not accepted by the transport", "event", e.Type, "err", err)
	}
}
