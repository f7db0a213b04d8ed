package api

import (
	"net/http"

	"github.com/presenced/presenced/presence"
)

// handleEvents answers GET /clients/{clientId}/events?from=&to=&limit=&cursor=&order=:
// the client's stored events, keyset-paginated on the store seq. order is
// desc (newest first, the default) or asc. from (inclusive) and to
// (exclusive) bound the broker time; a range may span at most
// MaxHistoryRange: with only one of them the other is set that far away,
// with neither the history is not bounded in time (pages still are).
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	clientID, err := s.clientIDParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	var problems presence.Problems
	hq := presence.HistoryQuery{ClientID: clientID, Descending: true}
	switch q.Get("order") {
	case "", "desc":
	case "asc":
		hq.Descending = false
	default:
		problems.Add(presence.FieldErrorf("order", "must be asc or desc"))
	}
	hq.Limit, err = queryLimit(q)
	problems.Add(err)
	hq.From, err = queryTime(q, "from")
	problems.Add(err)
	hq.To, err = queryTime(q, "to")
	problems.Add(err)
	switch {
	case hq.From.IsZero() && hq.To.IsZero():
	case hq.From.IsZero():
		hq.From = hq.To.Add(-MaxHistoryRange)
	case hq.To.IsZero():
		hq.To = hq.From.Add(MaxHistoryRange)
	case !hq.To.After(hq.From):
		problems.Add(presence.FieldErrorf("to", "must be after from"))
	case hq.To.Sub(hq.From) > MaxHistoryRange:
		problems.Add(presence.FieldErrorf("to", "the range from..to spans more than %d days", int(MaxHistoryRange.Hours()/24)))
	}
	if c := q.Get("cursor"); c != "" {
		hq.AfterSeq, err = decodeSeqCursor(c)
		problems.Add(err)
	}
	if err := problems.Err(); err != nil {
		s.writeError(w, r, err)
		return
	}
	events, err := s.deps.History.History(r.Context(), hq)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := page[presence.StoredEvent]{Items: events}
	// A full page may have a successor; the last page may then be empty.
	if len(events) == hq.Limit {
		out.NextCursor = encodeSeqCursor(events[len(events)-1].Seq)
	}
	writeJSON(w, http.StatusOK, out)
}
