package presence

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ChannelState is a channel's state as the store holds it after applying
// events to it: the input of the View.
type ChannelState struct {
	ChannelID string
	ClientID  string
	ClientIP  string
	Node      string
	Epoch     string
	// Open: connect seen and tcpclean not seen.
	Open bool
	// ConnectAt is the broker time of the connect (ms), 0 when not seen yet.
	ConnectAt int64
	// TCPCleanAt is the broker time of the tcpclean (ms), 0 when not seen yet.
	TCPCleanAt int64
	// Reason is the close reason of the tcpclean, if any.
	Reason Reason
	// LastEventAt is the broker time of the newest event of the channel (ms).
	LastEventAt int64
	// Seq is the store sequence number of the newest event applied to the
	// channel; changes are fed to the View in ascending Seq order.
	Seq int64
}

// Change is a client going online or offline, with the channel state that
// caused it.
type Change struct {
	ClientID string
	Online   bool
	Channel  ChannelState
}

// View is an in-memory copy of every client's open channels, built from the
// store at start-up and kept current from the channel states the store
// reports after each commit. It answers "is X online?" without a database
// round trip. The store stays the source of truth: a View fed every
// committed change in commit order equals the store's answer.
type View struct {
	mu      sync.RWMutex
	clients map[string]*clientEntry
	open    int // open channels in all
	online  int // clients with at least one open channel
	seq     int64
	// current is true while the view follows the store: set by Load, cleared
	// by MarkStale when the feed is lost. A view that is not current may be
	// behind the store, so its answers must not be given as the truth.
	current atomic.Bool
	// silent are the broker nodes that missed their lease: a client whose
	// open channels are all on silent nodes is answered StateUnknown.
	silent map[string]time.Time
}

type clientEntry struct {
	open        []openChannel // usually zero or one
	onlineSince int64         // ms; when the client went from no open channel to one
	lastEventAt int64
}

type openChannel struct {
	id        string
	node      string
	epoch     string
	connectAt int64
}

// NewView returns an empty view.
func NewView() *View { return &View{clients: make(map[string]*clientEntry)} }

// Apply folds channel states into the view and returns the clients whose
// online state changed, in the order of states. States must come in commit
// order (ascending Seq); a state with a Seq the view has already passed for
// that channel is still applied, since a state read later is never older.
func (v *View) Apply(states []ChannelState) []Change {
	v.mu.Lock()
	defer v.mu.Unlock()
	var changes []Change
	for _, s := range states {
		v.seq = max(v.seq, s.Seq)
		c := v.clients[s.ClientID]
		if c == nil {
			if !s.Open {
				// A closed channel of a client the view does not hold changes
				// only its last event time.
				v.clients[s.ClientID] = &clientEntry{lastEventAt: s.LastEventAt}
				continue
			}
			c = &clientEntry{}
			v.clients[s.ClientID] = c
		}
		c.lastEventAt = max(c.lastEventAt, s.LastEventAt)
		wasOnline := len(c.open) > 0
		i := c.index(s.ChannelID)
		switch {
		case s.Open && i < 0:
			c.open = append(c.open, openChannel{id: s.ChannelID, node: s.Node, epoch: s.Epoch, connectAt: s.ConnectAt})
			v.open++
		case !s.Open && i >= 0:
			c.open = append(c.open[:i], c.open[i+1:]...)
			v.open--
		}
		isOnline := len(c.open) > 0
		if isOnline == wasOnline {
			continue
		}
		if isOnline {
			v.online++
			c.onlineSince = s.ConnectAt
		} else {
			v.online--
			c.onlineSince = 0
		}
		changes = append(changes, Change{ClientID: s.ClientID, Online: isOnline, Channel: s})
	}
	return changes
}

func (c *clientEntry) index(channelID string) int {
	for i, ch := range c.open {
		if ch.id == channelID {
			return i
		}
	}
	return -1
}

// Load replaces the whole view with a snapshot of the store taken as of
// asOfSeq: the states of every open channel, and for every other client one
// closed state that carries its last event time. Open channels of a client
// may come in any order; its online period is taken to begin at the
// earliest connect among them. The view is current afterwards.
//
// Load returns the clients whose online state differs from the view it
// replaces (none on the first load), sorted by client id. Their Channel
// carries asOfSeq as Seq: the change is known to have happened by then,
// not exactly when.
func (v *View) Load(states []ChannelState, asOfSeq int64) []Change {
	fresh := make(map[string]*clientEntry, len(states))
	open, online := 0, 0
	for _, s := range states {
		c := fresh[s.ClientID]
		if c == nil {
			c = &clientEntry{}
			fresh[s.ClientID] = c
		}
		c.lastEventAt = max(c.lastEventAt, s.LastEventAt)
		if s.Open && c.index(s.ChannelID) < 0 {
			c.open = append(c.open, openChannel{id: s.ChannelID, node: s.Node, epoch: s.Epoch, connectAt: s.ConnectAt})
			open++
			if len(c.open) == 1 {
				online++
			}
		}
	}
	for _, c := range fresh {
		if len(c.open) > 0 {
			c.onlineSince = c.earliestConnect()
		}
	}

	v.mu.Lock()
	defer v.mu.Unlock()
	var changes []Change
	if len(v.clients) > 0 {
		changes = diff(v.clients, fresh, asOfSeq)
	}
	v.clients, v.open, v.online = fresh, open, online
	v.seq = asOfSeq
	v.current.Store(true)
	return changes
}

// diff returns the online changes from old to fresh, sorted by client id.
func diff(old, fresh map[string]*clientEntry, asOfSeq int64) []Change {
	var changes []Change
	for id, c := range fresh {
		if len(c.open) > 0 && (old[id] == nil || len(old[id].open) == 0) {
			ch := c.open[0]
			changes = append(changes, Change{ClientID: id, Online: true, Channel: ChannelState{
				ChannelID: ch.id, ClientID: id, Node: ch.node, Epoch: ch.epoch, Open: true,
				ConnectAt: ch.connectAt, LastEventAt: c.lastEventAt, Seq: asOfSeq}})
		}
	}
	for id, c := range old {
		if len(c.open) > 0 && (fresh[id] == nil || len(fresh[id].open) == 0) {
			ch := c.open[0]
			changes = append(changes, Change{ClientID: id, Online: false, Channel: ChannelState{
				ChannelID: ch.id, ClientID: id, Node: ch.node, Epoch: ch.epoch,
				ConnectAt: ch.connectAt, LastEventAt: c.lastEventAt, Seq: asOfSeq}})
		}
	}
	slices.SortFunc(changes, func(a, b Change) int { return strings.Compare(a.ClientID, b.ClientID) })
	return changes
}

// MarkStale records that the view no longer follows the store (the feed
// was lost); it stays stale until the next Load.
func (v *View) MarkStale() { v.current.Store(false) }

// Current reports whether the view follows the store: loaded, and its feed
// not lost since.
func (v *View) Current() bool { return v.current.Load() }

// Status answers for one client. An unknown client is offline.
func (v *View) Status(clientID string) Status {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.status(clientID)
}

// StatusMany answers Status for every id, in order (repeats included), from
// one consistent state of the view.
func (v *View) StatusMany(clientIDs []string) []Status {
	out := make([]Status, len(clientIDs))
	v.mu.RLock()
	defer v.mu.RUnlock()
	for i, id := range clientIDs {
		out[i] = v.status(id)
	}
	return out
}

// status answers for one client; v.mu must be held.
func (v *View) status(clientID string) Status {
	st := Status{ClientID: clientID, State: StateOffline}
	c := v.clients[clientID]
	if c == nil {
		return st
	}
	if c.lastEventAt > 0 {
		t := FromMillis(c.lastEventAt)
		st.LastEventAt = &t
	}
	st.OpenChannels = len(c.open)
	if st.OpenChannels > 0 {
		st.Online, st.State = true, StateOnline
		if node := v.silentNodeOf(c); node != "" {
			// Neither online nor offline: the only evidence is a node that
			// went silent. Since is when it did.
			silentSince := v.silent[node]
			st.Online, st.State, st.Node, st.Since = false, StateUnknown, node, &silentSince
			return st
		}
		since := c.onlineSince
		if since == 0 {
			since = c.earliestConnect()
		}
		if since > 0 {
			t := FromMillis(since)
			st.Since = &t
		}
	}
	return st
}

// silentNodeOf returns the node of c's open channels when every one of
// them is on a silent node, else "". v.mu must be held.
func (v *View) silentNodeOf(c *clientEntry) string {
	if len(v.silent) == 0 {
		return ""
	}
	for _, ch := range c.open {
		if _, silent := v.silent[ch.node]; !silent {
			return ""
		}
	}
	return c.open[0].node
}

// SetSilentNodes records the broker nodes that missed their lease (and are
// not yet declared lost). The clients whose open channels are all on them
// are answered StateUnknown — not online (their broker may have died), not
// offline (no tcpclean says so), with the silent Node and since when it is
// silent — until the node reports again or is declared lost and its
// channels are closed. nodes maps node → silent since.
func (v *View) SetSilentNodes(nodes map[string]time.Time) {
	silent := make(map[string]time.Time, len(nodes))
	for n, since := range nodes {
		silent[n] = since.UTC()
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.silent = silent
}

func (c *clientEntry) earliestConnect() int64 {
	var earliest int64
	for _, ch := range c.open {
		if ch.connectAt > 0 && (earliest == 0 || ch.connectAt < earliest) {
			earliest = ch.connectAt
		}
	}
	return earliest
}

// OpenChannelsOf returns the ids, nodes and epochs of a client's open channels.
func (v *View) OpenChannelsOf(clientID string) []ChannelState {
	v.mu.RLock()
	defer v.mu.RUnlock()
	c := v.clients[clientID]
	if c == nil {
		return nil
	}
	out := make([]ChannelState, len(c.open))
	for i, ch := range c.open {
		out[i] = ChannelState{ChannelID: ch.id, ClientID: clientID, Node: ch.node, Epoch: ch.epoch, Open: true, ConnectAt: ch.connectAt}
	}
	return out
}

// ViewStats are the view's totals.
type ViewStats struct {
	KnownClients  int
	OnlineClients int
	OpenChannels  int
	Seq           int64 // the newest store sequence number folded in
	Current       bool  // the view follows the store (see View.Current)
}

// Stats returns the view's totals.
func (v *View) Stats() ViewStats {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return ViewStats{KnownClients: len(v.clients), OnlineClients: v.online, OpenChannels: v.open, Seq: v.seq, Current: v.current.Load()}
}

// Forget drops clients without open channels whose last event is older
// than before, so the view does not grow with every client ever seen.
func (v *View) Forget(before time.Time) int {
	cut := Millis(before)
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for id, c := range v.clients {
		if len(c.open) == 0 && c.lastEventAt < cut {
			delete(v.clients, id)
			n++
		}
	}
	return n
}
