package api

import (
	"net/http"

	"github.com/presenced/presenced/presence"
)

// handleListClients answers GET /clients?state=&prefix=&limit=&cursor=:
// clients in client id order, keyset-paginated, from the view. state is
// online (the default), offline (clients the view knows with no open
// channel) or all; prefix selects a group, e.g. GID_x@@@.
func (s *Server) handleListClients(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var problems presence.Problems
	add := func(err error) { addProblem(&problems, err) }
	lq := presence.ListQuery{Prefix: q.Get("prefix")}
	switch state := q.Get("state"); state {
	case "", "online":
		lq.State = presence.StateOnline
	case "offline":
		lq.State = presence.StateOffline
	case "all":
	default:
		add(presence.FieldErrorf("state", "must be online, offline or all"))
	}
	if len(lq.Prefix) > presence.MaxClientIDBytes {
		add(presence.FieldErrorf("prefix", "is longer than %d bytes", presence.MaxClientIDBytes))
	}
	limit, err := queryLimit(q)
	add(err)
	lq.Limit = limit
	if c := q.Get("cursor"); c != "" {
		lq.After, err = decodeIDCursor(c)
		add(err)
	}
	if err := problems.Err(); err != nil {
		s.writeError(w, r, err)
		return
	}
	if !s.deps.Live.View.Current() {
		s.writeError(w, r, errViewNotCurrent)
		return
	}
	items, more := s.deps.Live.View.List(lq)
	out := page[presence.Status]{Items: items}
	if more {
		out.NextCursor = encodeIDCursor(items[len(items)-1].ClientID)
	}
	writeJSON(w, http.StatusOK, out)
}
