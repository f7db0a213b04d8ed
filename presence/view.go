package presence

import (
	"net/netip"
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
	// Username is the user name of the channel's CONNECT ("" when none).
	Username string
	Node     string
	Epoch    string
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
	// OnlineSince is set only in a snapshot's per-client state (ChannelID
	// empty): when the client's current online period began (ms), which
	// may be a channel closed since — a takeover's, or one that overlapped
	// it. 0 when not known: the earliest connect of its open channels.
	OnlineSince int64
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
//
// Its memory follows the online set, not history: it holds every client
// with an open channel, and of the others at most a bounded number
// (offlineCap), remembered only for their last event time. A client it
// does not hold is offline — every open channel is held — and its last
// event time is the store's to tell (Lookup reports which clients those
// are; Remember caches the answer).
type View struct {
	mu         sync.RWMutex
	clients    map[string]*clientEntry
	open       int // open channels in all
	online     int // clients with at least one open channel
	offline    int // clients held without an open channel
	offlineCap int
	evicted    int64 // offline clients dropped to stay within offlineCap, in all
	seq        int64
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

// clientAddr is the address of an event's clientIp: the broker records
// host and port ("203.0.113.7:52311", "[2001:db8::1]:40112"); other
// producers may give the address alone. Invalid when it is neither.
func clientAddr(clientIP string) netip.Addr {
	if ap, err := netip.ParseAddrPort(clientIP); err == nil {
		return ap.Addr().Unmap()
	}
	addr, _ := netip.ParseAddr(clientIP)
	return addr.Unmap()
}

type openChannel struct {
	id        string
	node      string
	epoch     string
	username  string
	addr      netip.Addr // the client's address; invalid when not recorded
	connectAt int64
}

// newOpenChannel keeps what the list filters of an open channel read. The
// address is parsed once here, not on every filtered listing.
func newOpenChannel(s ChannelState) openChannel {
	addr := clientAddr(s.ClientIP)
	return openChannel{id: s.ChannelID, node: s.Node, epoch: s.Epoch, username: s.Username,
		addr: addr, connectAt: s.ConnectAt}
}

// NewView returns an empty view that holds at most offlineCap clients
// without an open channel (0: none).
func NewView(offlineCap int) *View {
	return &View{clients: make(map[string]*clientEntry), offlineCap: max(offlineCap, 0)}
}

// Apply folds channel states into the view and returns the clients whose
// online state changed, in the order of states. States must come in commit
// order (ascending Seq); a state with a Seq the view has already passed for
// that channel is still applied, since a state read later is never older.
func (v *View) Apply(states []ChannelState) []Change {
	v.mu.Lock()
	defer v.mu.Unlock()
	var (
		changes []Change
		// takenOver are the clients whose last open channel the batch
		// closed by a takeover, with where their offline change stands in
		// changes and the online period it ended. The store keeps a
		// takeover's close until its successor's connect is stored, but
		// the feed gives each channel's current state in the order of its
		// newest event: the successor may come later in the batch (a
		// successor taken over in turn sorts after the close it caused).
		// Seeing it there, the client was never offline: no change, and
		// its online period goes on.
		takenOver map[string]takeoverGap
		cancelled bool
	)
	for _, s := range states {
		v.seq = max(v.seq, s.Seq)
		c := v.clients[s.ClientID]
		if c == nil {
			if !s.Open {
				// A closed channel of a client the view does not hold changes
				// only its last event time.
				v.addOffline(s.ClientID, s.LastEventAt)
				continue
			}
			c = &clientEntry{}
			v.clients[s.ClientID] = c
			v.offline++ // counted offline until the channel below opens
		}
		c.lastEventAt = max(c.lastEventAt, s.LastEventAt)
		wasOnline := len(c.open) > 0
		i := c.index(s.ChannelID)
		switch {
		case s.Open && i < 0:
			c.open = append(c.open, newOpenChannel(s))
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
			v.offline--
			c.onlineSince = s.ConnectAt
			if gap, ok := takenOver[s.ClientID]; ok {
				delete(takenOver, s.ClientID)
				changes[gap.at].ClientID = "" // never offline: dropped below
				cancelled = true
				c.onlineSince = gap.since
				continue
			}
		} else {
			v.online--
			v.offline++
			if s.Reason == ReasonTakeover {
				if takenOver == nil {
					takenOver = make(map[string]takeoverGap)
				}
				takenOver[s.ClientID] = takeoverGap{at: len(changes), since: c.onlineSince}
			}
			c.onlineSince = 0
		}
		changes = append(changes, Change{ClientID: s.ClientID, Online: isOnline, Channel: s})
	}
	if cancelled {
		changes = slices.DeleteFunc(changes, func(c Change) bool { return c.ClientID == "" })
	}
	v.evictOffline()
	return changes
}

// takeoverGap is a client's offline change that a successor later in the
// same batch may cancel (see Apply).
type takeoverGap struct {
	at    int   // index of the offline change
	since int64 // the online period the takeover would have ended
}

// addOffline holds a client without an open channel; v.mu must be held and
// the client not held yet. evictOffline restores the bound.
func (v *View) addOffline(clientID string, lastEventAt int64) {
	v.clients[clientID] = &clientEntry{lastEventAt: lastEventAt}
	v.offline++
}

// evictOffline drops clients without an open channel while there are
// more than offlineCap, an eighth of the cap at a time so that the scan
// is paid rarely. Go's map iteration starts at a random place, so the
// clients dropped are a random sample: a cache, not a history. v.mu must
// be held.
func (v *View) evictOffline() {
	if v.offline <= v.offlineCap {
		return
	}
	target := v.offlineCap - v.offlineCap/8
	for id, c := range v.clients {
		if v.offline <= target {
			break
		}
		if len(c.open) == 0 {
			delete(v.clients, id)
			v.offline--
			v.evicted++
		}
	}
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
// may come in any order; its online period begins at the OnlineSince a
// state carries, else at the earliest connect among them. The view is
// current afterwards.
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
		if s.OnlineSince > 0 {
			c.onlineSince = s.OnlineSince
		}
		if s.Open && c.index(s.ChannelID) < 0 {
			c.open = append(c.open, newOpenChannel(s))
			open++
			if len(c.open) == 1 {
				online++
			}
		}
	}
	for _, c := range fresh {
		switch earliest := c.earliestConnect(); {
		case len(c.open) == 0:
			c.onlineSince = 0
		case c.onlineSince == 0 || earliest > 0 && earliest < c.onlineSince:
			c.onlineSince = earliest
		}
	}

	v.mu.Lock()
	defer v.mu.Unlock()
	var changes []Change
	if len(v.clients) > 0 {
		changes = diff(v.clients, fresh, asOfSeq)
	}
	v.clients, v.open, v.online, v.offline = fresh, open, online, len(fresh)-online
	v.evictOffline()
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

// Lookup answers for one client. held is false for a client the view
// does not hold: it is offline, and its LastEventAt is the store's to
// tell (see Remember).
func (v *View) Lookup(clientID string) (st Status, held bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.status(clientID)
}

// LookupMany answers Lookup for every id, in order (repeats included),
// from one consistent state of the view; unheld lists the indexes of the
// ids the view does not hold.
func (v *View) LookupMany(clientIDs []string) (out []Status, unheld []int) {
	out = make([]Status, len(clientIDs))
	v.mu.RLock()
	defer v.mu.RUnlock()
	for i, id := range clientIDs {
		var held bool
		if out[i], held = v.status(id); !held {
			unheld = append(unheld, i)
		}
	}
	return out, unheld
}

// Remember caches the newest event time the store holds for a client the
// view did not hold (0: the store never heard of it), within the bound of
// offline clients. A client the feed brought in meanwhile keeps the newer
// of the two times, so a slow store answer never makes the view older.
func (v *View) Remember(clientID string, lastEventAt int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if c := v.clients[clientID]; c != nil {
		c.lastEventAt = max(c.lastEventAt, lastEventAt)
		return
	}
	if v.offlineCap == 0 {
		return
	}
	v.addOffline(clientID, lastEventAt)
	v.evictOffline()
}

// status answers for one client; v.mu must be held.
func (v *View) status(clientID string) (Status, bool) {
	st := Status{ClientID: clientID, State: StateOffline}
	c := v.clients[clientID]
	if c == nil {
		return st, false
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
			return st, true
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
	return st, true
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
	// HeldClients are the clients the view holds: the online ones and at
	// most its bound of offline ones (not every client ever seen).
	HeldClients   int
	OnlineClients int
	OpenChannels  int
	// EvictedClients counts the offline clients dropped to stay within the
	// bound, since the view was made.
	EvictedClients int64
	Seq            int64 // the newest store sequence number folded in
	Current        bool  // the view follows the store (see View.Current)
}

// Stats returns the view's totals.
func (v *View) Stats() ViewStats {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return ViewStats{HeldClients: len(v.clients), OnlineClients: v.online, OpenChannels: v.open, EvictedClients: v.evicted,
		Seq: v.seq, Current: v.current.Load()}
}
