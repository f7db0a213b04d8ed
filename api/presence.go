package api

import (
	"context"
	"net/http"
	"time"

	"github.com/presenced/presenced/presence"
)

// SpanReader reads the connected periods of a client's channels that
// overlap a window (ms, broker clock), for answers about the past.
type SpanReader interface {
	ChannelSpans(ctx context.Context, clientID string, from, to int64) ([]presence.ChannelSpan, error)
}

// presenceResponse is the body of GET /clients/{clientId}/presence.
type presenceResponse struct {
	ClientID  string             `json:"clientId"`
	From      time.Time          `json:"from"`
	To        time.Time          `json:"to"`
	Intervals []intervalResponse `json:"intervals"`
	OnlineMs  int64              `json:"onlineMs"`
	// Uptime is OnlineMs over the window's length up to now.
	Uptime float64 `json:"uptime"`
}

type intervalResponse struct {
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Ongoing bool      `json:"ongoing,omitempty"`
}

// handlePresence answers GET /clients/{clientId}/presence?from=&to=: the
// periods within [from, to) during which the client was online (any
// channel connected), merged across channels — a takeover leaves no gap —
// and the fraction of the window it was online. The window ends at now at
// the latest, and spans at most MaxHistoryRange (default: the last day).
// Times are the broker's, as in /events; history goes back as far as
// retention keeps it.
func (s *Server) handlePresence(w http.ResponseWriter, r *http.Request) {
	clientID, err := s.clientIDParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	var problems presence.Problems
	from, err := queryTime(q, "from")
	problems.Add(err)
	to, err := queryTime(q, "to")
	problems.Add(err)
	now := time.Now().UTC()
	if to.IsZero() || to.After(now) {
		to = now
	}
	switch {
	case from.IsZero():
		from = to.Add(-24 * time.Hour)
	case !to.After(from):
		problems.Add(presence.FieldErrorf("to", "must be after from, and from not in the future"))
	case to.Sub(from) > MaxHistoryRange:
		problems.Add(presence.FieldErrorf("to", "the range from..to spans more than %d days", int(MaxHistoryRange.Hours()/24)))
	}
	if err := problems.Err(); err != nil {
		s.writeError(w, r, err)
		return
	}
	fromMs, toMs := presence.Millis(from), presence.Millis(to)
	spans, err := s.deps.Spans.ChannelSpans(r.Context(), clientID, fromMs, toMs)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	intervals, onlineMs := presence.OnlineIntervals(spans, fromMs, toMs)
	out := presenceResponse{ClientID: clientID, From: presence.FromMillis(fromMs), To: presence.FromMillis(toMs),
		Intervals: make([]intervalResponse, len(intervals)), OnlineMs: onlineMs, Uptime: float64(onlineMs) / float64(toMs-fromMs)}
	for i, iv := range intervals {
		out.Intervals[i] = intervalResponse{From: presence.FromMillis(iv.From), To: presence.FromMillis(iv.To), Ongoing: iv.Ongoing}
	}
	writeJSON(w, http.StatusOK, out)
}

// onlineAtResponse is the body of GET /clients/{clientId}/online?at=T.
type onlineAtResponse struct {
	ClientID     string    `json:"clientId"`
	At           time.Time `json:"at"`
	Online       bool      `json:"online"`
	OpenChannels int       `json:"openChannels"`
}

// handleOnlineAt answers "was the client online at T" from history: the
// rule applied to the channels connected at T (broker clock).
func (s *Server) handleOnlineAt(w http.ResponseWriter, r *http.Request, clientID string) {
	at, err := queryTime(r.URL.Query(), "at")
	switch {
	case err != nil:
	case at.IsZero():
		err = presence.FieldErrorf("at", "is empty; give a time as RFC 3339 or ms since the epoch")
	case at.After(time.Now()):
		err = presence.FieldErrorf("at", "is in the future; leave it out for the present")
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ms := presence.Millis(at)
	ctx, cancel := s.storeContext(r.Context())
	defer cancel()
	spans, err := s.deps.Spans.ChannelSpans(ctx, clientID, ms, ms+1)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, onlineAtResponse{ClientID: clientID, At: presence.FromMillis(ms), Online: len(spans) > 0, OpenChannels: len(spans)})
}
