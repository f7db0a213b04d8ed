package api

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/presenced/presenced/presence"
)

// statsResponse is the body of GET /stats.
type statsResponse struct {
	Prefix        string `json:"prefix,omitempty"`
	OnlineClients int    `json:"onlineClients"`
	OpenChannels  int    `json:"openChannels"`
	// KnownClients and EventsStored are counted in the store, which holds
	// every client ever seen (within retention); both are cached for a
	// few seconds, since counting scans.
	KnownClients int64 `json:"knownClients"`
	EventsStored int64 `json:"eventsStored"`
	// EventsCountedAt is when the two were counted.
	EventsCountedAt time.Time `json:"eventsCountedAt"`
	// Seq is the newest store sequence number the view has folded in.
	Seq int64 `json:"seq"`
}

// handleStats answers GET /stats?prefix=: online clients and open
// channels from the view, known clients and events stored from the store.
func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	switch by := r.URL.Query().Get("groupBy"); by {
	case "":
	case "group":
		s.handleStatsByGroup(w, r)
		return
	default:
		s.writeError(w, r, presence.FieldErrorf("groupBy", "must be group (the GroupId, before @@@) or absent"))
		return
	}
	prefix := r.URL.Query().Get("prefix")
	if len(prefix) > presence.MaxClientIDBytes {
		s.writeError(w, r, presence.FieldErrorf("prefix", "is longer than %d bytes", presence.MaxClientIDBytes))
		return
	}
	if !s.viewCurrent(w, r) {
		return
	}
	counted, err := s.counts.get(r.Context(), prefix, s.countStored)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	vs := s.deps.Live.View.PrefixStats(prefix)
	writeJSON(w, http.StatusOK, statsResponse{Prefix: prefix, OnlineClients: vs.OnlineClients, OpenChannels: vs.OpenChannels,
		KnownClients: counted.clients, EventsStored: counted.events, EventsCountedAt: counted.at, Seq: vs.Seq})
}

// countStored counts the events and the clients of prefix in the store.
func (s *Server) countStored(ctx context.Context, prefix string) (countEntry, error) {
	events, err := s.deps.Counter.CountEvents(ctx, prefix)
	if err != nil {
		return countEntry{}, err
	}
	clients, err := s.deps.Clients.CountClients(ctx, prefix)
	return countEntry{events: events, clients: clients}, err
}

// countCache reuses the store's counts for ttl, so dashboards polling
// /stats do not make the database count millions of rows on every poll.
type countCache struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]countEntry
}

type countEntry struct {
	events, clients int64
	at              time.Time
}

// maxCachedPrefixes bounds the cache; it is cleared when full.
const maxCachedPrefixes = 1000

func newCountCache(ttl time.Duration, now func() time.Time) *countCache {
	return &countCache{ttl: ttl, now: now, entries: make(map[string]countEntry)}
}

func (c *countCache) get(ctx context.Context, prefix string, count func(context.Context, string) (countEntry, error)) (countEntry, error) {
	c.mu.Lock()
	e, ok := c.entries[prefix]
	c.mu.Unlock()
	if ok && c.now().Sub(e.at) < c.ttl {
		return e, nil
	}
	e, err := count(ctx, prefix)
	if err != nil {
		return countEntry{}, err
	}
	e.at = c.now().UTC()
	c.mu.Lock()
	if len(c.entries) >= maxCachedPrefixes {
		clear(c.entries)
	}
	c.entries[prefix] = e
	c.mu.Unlock()
	return e, nil
}

// groupStatsResponse is the body of GET /stats?groupBy=group.
type groupStatsResponse struct {
	Groups []presence.GroupStats `json:"groups"`
	// TotalGroups counts the groups with online clients; Groups holds the
	// largest limit of them.
	TotalGroups int   `json:"totalGroups"`
	Seq         int64 `json:"seq"`
}

// handleStatsByGroup answers GET /stats?groupBy=group&limit=: online
// clients and open channels per Alibaba group (the client id's part before
// @@@), largest first, from the view.
func (s *Server) handleStatsByGroup(w http.ResponseWriter, r *http.Request) {
	limit, err := queryLimit(r.URL.Query())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !s.viewCurrent(w, r) {
		return
	}
	groups, total := s.deps.Live.View.OnlineByGroup(limit)
	writeJSON(w, http.StatusOK, groupStatsResponse{Groups: groups, TotalGroups: total, Seq: s.deps.Live.View.Stats().Seq})
}
