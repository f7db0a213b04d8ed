package api

import (
	"context"
	"net/http"
	"time"

	"github.com/presenced/presenced/presence"
)

// ingestResponse is the body of a successful POST /events.
type ingestResponse struct {
	Received   int `json:"received"`
	Applied    int `json:"applied"`    // new events stored
	Duplicates int `json:"duplicates"` // events the store already had
}

// visibleWait bounds how long POST /events waits for its events to reach
// this process's view.
const visibleWait = 2 * time.Second

// handleIngest answers POST /events: one event object or an array of up
// to MaxEventsPerPost, in the event contract, as other brokers' webhooks
// send them. Every event is validated first; if any is invalid the answer
// is 400 listing every problem ("[i].field") and nothing is stored.
// Valid batches go through the store's idempotent Ingest in one
// transaction, so a redelivered webhook changes nothing. A batch with an
// event for a channel of a broker node that reports itself is refused
// whole with 409, naming each such event and its node: ingested events
// never overrule a broker. The answer comes once this process's view
// reflects the events, so a caller can read its own writes.
func (s *Server) handleIngest(w http.ResponseWriter, r *http.Request) {
	body, err := s.readBody(w, r)
	if err != nil {
		return
	}
	events, err := presence.DecodeEvents(body, MaxEventsPerPost)
	if err != nil {
		s.metrics.ingested.WithLabelValues("rejected").Inc()
		s.writeError(w, r, err)
		return
	}
	applied, err := s.deps.Ingester.Ingest(r.Context(), events)
	if err != nil {
		if presence.ErrorCode(err) == presence.ECONFLICT {
			s.metrics.ingested.WithLabelValues("refused").Add(float64(len(events)))
		}
		s.writeError(w, r, err)
		return
	}
	s.metrics.ingested.WithLabelValues("applied").Add(float64(len(applied)))
	s.metrics.ingested.WithLabelValues("duplicate").Add(float64(len(events) - len(applied)))
	if len(applied) > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), visibleWait)
		s.deps.Live.waitFor(ctx, applied[len(applied)-1].Seq)
		cancel()
	}
	writeJSON(w, http.StatusOK, ingestResponse{Received: len(events), Applied: len(applied), Duplicates: len(events) - len(applied)})
}
