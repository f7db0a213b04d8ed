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
	KnownClients  int    `json:"knownClients"`
	EventsStored  int64  `json:"eventsStored"`
	// EventsCountedAt is when EventsStored was counted (it is cached for a
	// few seconds: counting scans the events).
	EventsCountedAt time.Time `json:"eventsCountedAt"`
	// Seq is the newest store sequence number the view has folded in.
	Seq int64 `json:"seq"`
}

// handleStats answers GET /stats?prefix=: online clients and open
// channels from the view, events stored from the store.
func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	prefix := r.URL.Query().Get("prefix")
	if len(prefix) > presence.MaxClientIDBytes {
		s.writeError(w, r, presence.FieldErrorf("prefix", "is longer than %d bytes", presence.MaxClientIDBytes))
		return
	}
	if !s.deps.Live.View.Current() {
		s.writeError(w, r, errViewNotCurrent)
		return
	}
	events, countedAt, err := s.counts.get(r.Context(), prefix, s.deps.Counter)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	vs := s.deps.Live.View.PrefixStats(prefix)
	writeJSON(w, http.StatusOK, statsResponse{Prefix: prefix, OnlineClients: vs.OnlineClients, OpenChannels: vs.OpenChannels,
		KnownClients: vs.KnownClients, EventsStored: events, EventsCountedAt: countedAt, Seq: vs.Seq})
}

// countCache reuses event counts for ttl, so dashboards polling /stats do
// not make the database count millions of rows on every poll.
type countCache struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]countEntry
}

type countEntry struct {
	n  int64
	at time.Time
}

// maxCachedPrefixes bounds the cache; it is cleared when full.
const maxCachedPrefixes = 1000

func newCountCache(ttl time.Duration, now func() time.Time) *countCache {
	return &countCache{ttl: ttl, now: now, entries: make(map[string]countEntry)}
}

func (c *countCache) get(ctx context.Context, prefix string, counter EventCounter) (int64, time.Time, error) {
	c.mu.Lock()
	e, ok := c.entries[prefix]
	c.mu.Unlock()
	if ok && c.now().Sub(e.at) < c.ttl {
		return e.n, e.at, nil
	}
	n, err := counter.CountEvents(ctx, prefix)
	if err != nil {
		return 0, time.Time{}, err
	}
	e = countEntry{n: n, at: c.now().UTC()}
	c.mu.Lock()
	if len(c.entries) >= maxCachedPrefixes {
		clear(c.entries)
	}
	c.entries[prefix] = e
	c.mu.Unlock()
	return e.n, e.at, nil
}
