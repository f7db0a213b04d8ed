package api

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/presence"
)

// Live is the API's in-memory state: the view of open channels and the
// stream of presence changes, fed only from the store's commit-ordered
// change feed. It is the pgstore.FeedSink that cmd/presenced hands to the
// store's Follower, in every mode, so every API process answers from the
// same code path.
type Live struct {
	View   *presence.View
	Stream *Stream

	mu      sync.Mutex
	seq     int64         // the newest seq folded into the view
	changed chan struct{} // closed and replaced whenever seq advances
}

// NewLive returns an empty, not yet loaded Live whose view holds at most
// offlineCap offline clients and whose stream remembers the last ringSize
// changes for resumption (default 10,000).
func NewLive(offlineCap, ringSize int) *Live {
	return &Live{View: presence.NewView(offlineCap), Stream: newStream(ringSize), changed: make(chan struct{})}
}

// Load replaces the view with a snapshot of the store as of asOfSeq.
func (l *Live) Load(states []presence.ChannelState, asOfSeq int64) {
	changes := l.View.Load(states, asOfSeq)
	l.Stream.reload(asOfSeq, changes)
	l.advance(asOfSeq)
}

// Apply folds channels changed in the store, in commit order, and
// publishes the resulting presence changes.
func (l *Live) Apply(states []presence.ChannelState) {
	if len(states) == 0 {
		return
	}
	seq := states[len(states)-1].Seq
	l.Stream.publish(seq, l.View.Apply(states))
	l.advance(seq)
}

// SilentNodes tells the view which broker nodes missed their lease: their
// clients are answered "unknown".
func (l *Live) SilentNodes(nodes map[string]time.Time) { l.View.SetSilentNodes(nodes) }

// Lost marks the view stale: until the next Load the API answers 503
// rather than risk a wrong answer.
func (l *Live) Lost(error) { l.View.MarkStale() }

func (l *Live) advance(seq int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq = max(l.seq, seq)
	close(l.changed)
	l.changed = make(chan struct{})
}

// waitFor waits until the view has folded in seq, or ctx ends; it reports
// whether the view got there. POST /events uses it so that a caller who
// ingested an event reads its effect back (read your writes).
func (l *Live) waitFor(ctx context.Context, seq int64) bool {
	for {
		l.mu.Lock()
		reached, changed := l.seq >= seq, l.changed
		l.mu.Unlock()
		if reached {
			return true
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return false
		}
	}
}

// register adds the view's and the stream's metrics to reg.
func (l *Live) register(reg prometheus.Registerer) {
	gauge := func(name, help string, value func(presence.ViewStats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return value(l.View.Stats()) })
	}
	current := func(s presence.ViewStats) float64 {
		if s.Current {
			return 1
		}
		return 0
	}
	reg.MustRegister(
		gauge("presenced_view_online_clients", "Clients with at least one open channel, in the view.",
			func(s presence.ViewStats) float64 { return float64(s.OnlineClients) }),
		gauge("presenced_view_open_channels", "Open channels (connect without tcpclean), in the view.",
			func(s presence.ViewStats) float64 { return float64(s.OpenChannels) }),
		gauge("presenced_view_held_clients", "Clients the view holds: every online one and at most --view-offline-cache offline ones.",
			func(s presence.ViewStats) float64 { return float64(s.HeldClients) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "presenced_view_evicted_clients_total",
			Help: "Offline clients the view dropped to stay within --view-offline-cache (their lookups then ask the store)."},
			func() float64 { return float64(l.View.Stats().EvictedClients) }),
		gauge("presenced_view_seq", "The newest store sequence number folded into the view.",
			func(s presence.ViewStats) float64 { return float64(s.Seq) }),
		gauge("presenced_view_current", "1 while the view follows the store's change feed, 0 when the feed is lost.", current),
	)
	l.Stream.register(reg)
}
