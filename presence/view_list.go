package presence

import (
	"container/heap"
	"net/netip"
	"slices"
	"strings"
)

// ListQuery selects online clients of a View, keyset-paginated on the
// client id. (Offline clients are listed from the store: the view holds
// only some of them.)
type ListQuery struct {
	// Prefix keeps client ids that start with it, e.g. a group "GID_x@@@".
	Prefix string
	// After is the last client id of the previous page ("" for the first).
	After string
	// Limit is the page size; it must be positive.
	Limit int
	// Node keeps clients with an open channel on that broker node.
	Node string
	// Username keeps clients with an open channel connected with that
	// user name.
	Username string
	// Network (when valid) keeps clients with an open channel from an
	// address inside it, e.g. 10.1.0.0/16; a single address is a /32 or
	// /128.
	Network netip.Prefix
	// ConnectedFrom and ConnectedTo (ms, broker clock; 0: unbounded) keep
	// clients with an open channel connected in [ConnectedFrom,
	// ConnectedTo). All filters must match the same channel.
	ConnectedFrom, ConnectedTo int64
}

// Filtered reports whether q filters on the open channels, beyond the
// client id prefix.
func (q ListQuery) Filtered() bool {
	return q.Node != "" || q.Username != "" || q.Network.IsValid() || q.ConnectedFrom != 0 || q.ConnectedTo != 0
}

// matches reports whether one of c's open channels passes q's filters.
func (q ListQuery) matches(c *clientEntry) bool {
	if !q.Filtered() {
		return true
	}
	for _, ch := range c.open {
		if q.matchesChannel(ch) {
			return true
		}
	}
	return false
}

func (q ListQuery) matchesChannel(ch openChannel) bool {
	return (q.Node == "" || ch.node == q.Node) &&
		(q.Username == "" || ch.username == q.Username) &&
		(!q.Network.IsValid() || q.Network.Contains(ch.addr)) &&
		ch.connectAt >= q.ConnectedFrom && (q.ConnectedTo == 0 || ch.connectAt < q.ConnectedTo)
}

// List returns one page of the clients with an open channel (online, or
// unknown on a silent node) in client id order, and whether more follow. It scans the view once (O(clients), no sorting of the whole
// set: the smallest Limit ids are kept in a bounded heap), so a page of a
// 100,000-client view costs about a millisecond and never blocks the feed
// for longer than that.
func (v *View) List(q ListQuery) (page []Status, more bool) {
	limit := max(q.Limit, 1)
	v.mu.RLock()
	defer v.mu.RUnlock()
	// Keep limit+1 smallest ids: the extra one tells whether more follow.
	h := &maxHeap{}
	for id, c := range v.clients {
		if len(c.open) == 0 || id <= q.After || !strings.HasPrefix(id, q.Prefix) || !q.matches(c) {
			continue
		}
		if h.Len() <= limit {
			heap.Push(h, id)
		} else if id < (*h)[0] {
			(*h)[0] = id
			heap.Fix(h, 0)
		}
	}
	ids := []string(*h)
	slices.Sort(ids)
	if len(ids) > limit {
		ids, more = ids[:limit], true
	}
	page = make([]Status, len(ids))
	for i, id := range ids {
		page[i], _ = v.status(id)
	}
	return page, more
}

// PrefixStats returns the totals of the clients whose id starts with
// prefix (all clients for ""); Seq and Current are the view's.
func (v *View) PrefixStats(prefix string) ViewStats {
	if prefix == "" {
		return v.Stats()
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	st := ViewStats{Seq: v.seq, Current: v.current.Load()}
	for id, c := range v.clients {
		if !strings.HasPrefix(id, prefix) {
			continue
		}
		st.HeldClients++
		st.OpenChannels += len(c.open)
		if len(c.open) > 0 {
			st.OnlineClients++
		}
	}
	return st
}

// maxHeap keeps the largest string on top, to evict it when a smaller one
// arrives.
type maxHeap []string

func (h maxHeap) Len() int           { return len(h) }
func (h maxHeap) Less(i, j int) bool { return h[i] > h[j] }
func (h maxHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *maxHeap) Push(x any)        { *h = append(*h, x.(string)) }
func (h *maxHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// GroupStats are the online totals of one Alibaba group (GroupID).
type GroupStats struct {
	Group         string `json:"group"` // "" for client ids without a group
	OnlineClients int    `json:"onlineClients"`
	OpenChannels  int    `json:"openChannels"`
}

// OnlineByGroup returns the online totals per group, largest first (then
// by name), at most limit of them, and how many groups have online
// clients in all. It scans the view once; offline clients, which the view
// holds only some of, are not counted.
func (v *View) OnlineByGroup(limit int) (groups []GroupStats, total int) {
	v.mu.RLock()
	byGroup := make(map[string]*GroupStats)
	for id, c := range v.clients {
		if len(c.open) == 0 {
			continue
		}
		g := GroupID(id)
		st := byGroup[g]
		if st == nil {
			st = &GroupStats{Group: g}
			byGroup[g] = st
		}
		st.OnlineClients++
		st.OpenChannels += len(c.open)
	}
	v.mu.RUnlock()
	groups = make([]GroupStats, 0, len(byGroup))
	for _, st := range byGroup {
		groups = append(groups, *st)
	}
	slices.SortFunc(groups, func(a, b GroupStats) int {
		if a.OnlineClients != b.OnlineClients {
			return b.OnlineClients - a.OnlineClients
		}
		return strings.Compare(a.Group, b.Group)
	})
	return groups[:min(len(groups), max(limit, 0))], len(groups)
}
