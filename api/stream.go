package api

import (
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/presence"
)

// Stream fans presence changes out to /stream subscribers. It keeps a
// ring of the most recent changes so a subscriber that reconnects with
// Last-Event-ID (the store seq of the last change it got) misses nothing;
// when that id is older than the ring, the subscriber is told to refetch
// (a reset event). Publishing never blocks: a subscriber whose buffer is
// full is disconnected, and resumes from the ring.
type Stream struct {
	mu    sync.Mutex
	seq   int64 // the newest store seq folded in
	floor int64 // the ring holds every change with seq > floor
	ring  []streamEntry
	start int // index of the oldest entry in ring once it is full
	full  bool

	loaded  bool
	closed  bool
	subs    map[*subscriber]struct{}
	maxSubs int
	bufSize int

	published, dropped, resets atomic.Uint64
}

// streamEntry is one change, encoded once for every subscriber.
type streamEntry struct {
	seq      int64
	clientID string
	online   bool
	data     []byte // the SSE data line's JSON
}

// subscriber is one /stream response.
type subscriber struct {
	match    func(clientID string) bool
	ch       chan streamEntry
	done     chan struct{} // closed when the stream drops the subscriber
	reloaded atomic.Bool   // the view was reloaded: tell the client to refetch
	lagging  atomic.Bool   // dropped for not keeping up
}

func newStream(ringSize int) *Stream {
	if ringSize <= 0 {
		ringSize = 10_000
	}
	return &Stream{ring: make([]streamEntry, 0, ringSize), subs: make(map[*subscriber]struct{}), maxSubs: 1000, bufSize: 1024}
}

func (s *Stream) configure(maxSubs, bufSize int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxSubs, s.bufSize = maxSubs, bufSize
}

// changeJSON is the data of an online or offline event.
type changeJSON struct {
	Seq      int64          `json:"seq"`
	ClientID string         `json:"clientId"`
	Online   bool           `json:"online"`
	State    presence.State `json:"state"`
	// Event is the channel event behind the change: the connect that
	// opened the client's first channel, or the tcpclean that closed its
	// last one.
	Event changeEventJSON `json:"event"`
}

type changeEventJSON struct {
	ChannelID string             `json:"channelId"`
	EventType presence.EventType `json:"eventType,omitempty"`
	// Time is the event's own time field as everywhere in the API: ms
	// since the epoch on the broker's clock (other time fields are RFC 3339).
	Time      int64           `json:"time,omitempty"`
	ClientIP  string          `json:"clientIp,omitempty"`
	Node      string          `json:"node,omitempty"`
	Epoch     string          `json:"epoch,omitempty"`
	Reason    presence.Reason `json:"reason,omitempty"`
	ConnectAt *time.Time      `json:"connectAt,omitempty"`
}

func encodeChange(c presence.Change) streamEntry {
	ch := c.Channel
	v := changeJSON{Seq: ch.Seq, ClientID: c.ClientID, Online: c.Online, State: presence.StateOffline,
		Event: changeEventJSON{ChannelID: ch.ChannelID, ClientIP: ch.ClientIP, Node: ch.Node, Epoch: ch.Epoch,
			Reason: ch.Reason, ConnectAt: millisPtr(ch.ConnectAt)}}
	switch {
	case c.Online:
		v.State = presence.StateOnline
		v.Event.EventType, v.Event.Time = presence.EventConnect, ch.ConnectAt
	case ch.TCPCleanAt > 0:
		v.Event.EventType, v.Event.Time = presence.EventTCPClean, ch.TCPCleanAt
	}
	data, _ := json.Marshal(v)
	return streamEntry{seq: ch.Seq, clientID: c.ClientID, online: c.Online, data: data}
}

func millisPtr(ms int64) *time.Time {
	if ms <= 0 {
		return nil
	}
	t := presence.FromMillis(ms)
	return &t
}

// publish records the changes of feed position seq and hands them to the
// subscribers they match.
func (s *Stream) publish(seq int64, changes []presence.Change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range changes {
		e := encodeChange(c)
		s.remember(e)
		s.published.Add(1)
		for sub := range s.subs {
			if !sub.match(e.clientID) {
				continue
			}
			select {
			case sub.ch <- e:
			default:
				sub.lagging.Store(true)
				s.drop(sub)
			}
		}
	}
	s.seq = max(s.seq, seq)
}

// remember appends e to the ring, evicting the oldest entry when full.
func (s *Stream) remember(e streamEntry) {
	if !s.full {
		s.ring = append(s.ring, e)
		s.full = len(s.ring) == cap(s.ring)
		return
	}
	s.floor = s.ring[s.start].seq
	s.ring[s.start] = e
	s.start = (s.start + 1) % len(s.ring)
}

// reload follows a (re)load of the view. The first load only sets the
// position. A later one that changed presence, or went back in the seq
// space (a restored database), cannot be replayed in order: the ring is
// cleared and every subscriber is told to refetch.
func (s *Stream) reload(asOfSeq int64, changes []presence.Change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.loaded || (len(changes) == 0 && asOfSeq >= s.seq) {
		if !s.loaded {
			s.floor = asOfSeq
		}
		s.loaded = true
		s.seq = max(s.seq, asOfSeq)
		return
	}
	s.resets.Add(1)
	s.ring, s.start, s.full = s.ring[:0], 0, false
	s.seq, s.floor = asOfSeq, asOfSeq
	for sub := range s.subs {
		sub.reloaded.Store(true)
		s.drop(sub)
	}
}

// drop ends a subscription; s.mu must be held.
func (s *Stream) drop(sub *subscriber) {
	if _, ok := s.subs[sub]; ok {
		delete(s.subs, sub)
		close(sub.done)
		if sub.lagging.Load() {
			s.dropped.Add(1)
		}
	}
}

// subscription is what subscribe hands to a /stream handler.
type subscription struct {
	*subscriber
	replay    []streamEntry // changes after Last-Event-ID, to send first
	mustReset bool          // Last-Event-ID is not in the ring: refetch
	seq       int64         // the stream position at subscribe time
}

// subscribe registers a subscriber for the changes matching match. With
// lastSeq (Last-Event-ID) it also returns the remembered changes after it,
// or reset when they are not all remembered.
func (s *Stream) subscribe(match func(string) bool, lastSeq *int64) (subscription, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return subscription{}, presence.Errorf(presence.EUNAVAILABLE, "the server is shutting down")
	case !s.loaded:
		return subscription{}, presence.Errorf(presence.EUNAVAILABLE, "the presence view is not loaded yet")
	case len(s.subs) >= s.maxSubs:
		return subscription{}, presence.Errorf(presence.EOVERLOADED, "too many streams (%d); retry later", s.maxSubs)
	}
	sub := &subscriber{match: match, ch: make(chan streamEntry, s.bufSize), done: make(chan struct{})}
	s.subs[sub] = struct{}{}
	out := subscription{subscriber: sub, seq: s.seq}
	if lastSeq != nil {
		if *lastSeq < s.floor || *lastSeq > s.seq {
			out.mustReset = true
		} else {
			for i := range s.ring {
				e := s.ring[(s.start+i)%len(s.ring)]
				if e.seq > *lastSeq && match(e.clientID) {
					out.replay = append(out.replay, e)
				}
			}
		}
	}
	return out, nil
}

// unsubscribe removes sub (when its client went away).
func (s *Stream) unsubscribe(sub *subscriber) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop(sub)
}

// Close ends every subscription and refuses new ones: graceful shutdown.
func (s *Stream) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for sub := range s.subs {
		s.drop(sub)
	}
}

// subscribers returns the number of subscribers.
func (s *Stream) subscribers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs)
}

// matcher keeps the changes of the given client ids and id prefixes; with
// neither, every change.
func matcher(clientIDs, prefixes []string) func(string) bool {
	if len(clientIDs) == 0 && len(prefixes) == 0 {
		return func(string) bool { return true }
	}
	ids := make(map[string]bool, len(clientIDs))
	for _, id := range clientIDs {
		ids[id] = true
	}
	return func(clientID string) bool {
		if ids[clientID] {
			return true
		}
		for _, p := range prefixes {
			if strings.HasPrefix(clientID, p) {
				return true
			}
		}
		return false
	}
}

func (s *Stream) register(reg prometheus.Registerer) {
	counter := func(name, help string, v *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v.Load()) })
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "presenced_stream_subscribers", Help: "Open /stream subscriptions."},
			func() float64 { return float64(s.subscribers()) }),
		counter("presenced_stream_changes_total", "Presence changes published to /stream.", &s.published),
		counter("presenced_stream_laggards_total", "Subscribers disconnected for not keeping up (they resume with Last-Event-ID).", &s.dropped),
		counter("presenced_stream_resets_total", "Reloads of the view that told every subscriber to refetch.", &s.resets),
	)
}
