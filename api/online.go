package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"

	"github.com/go-chi/chi/v5"

	"github.com/presenced/presenced/presence"
)

// handleOnline answers GET /clients/{clientId}/online from the in-memory
// view: no database round trip for a client it holds (every online one,
// and a bounded number of offline ones), one index lookup for the last
// event time of any other. An unknown client is simply offline.
//
// ServeHTTP answers GET of the route ahead of the router (fastpath.go).
// The router keeps the route all the same: it answers the other methods
// of the path (405 with Allow: GET), and TestOnlineFastPathMatchesRouter
// holds the two paths to the same answers.
func (s *Server) handleOnline(w http.ResponseWriter, r *http.Request) {
	clientID, err := s.clientIDParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.online(w, r, clientID)
}

// online answers the lookup of a valid client id.
func (s *Server) online(w http.ResponseWriter, r *http.Request, clientID string) {
	// RawQuery first: parsing an absent query would still allocate its map.
	if r.URL.RawQuery != "" && r.URL.Query().Has("at") {
		s.handleOnlineAt(w, r, clientID)
		return
	}
	if !s.viewCurrent(w, r) {
		return
	}
	st, held := s.deps.Live.View.Lookup(clientID)
	if !held {
		statuses, err := s.lookup(r.Context(), []string{clientID})
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		st = statuses[0]
	}
	bp := bodyPool.Get().(*[]byte)
	buf := append(appendStatus((*bp)[:0], st), '\n')
	writeRawJSON(w, buf)
	if cap(buf) <= 4096 {
		*bp = buf[:0]
		bodyPool.Put(bp)
	}
}

// lookup answers for every id from one consistent state of the view,
// asking the store for the last event time of the clients the view does
// not hold (offline ones beyond its bound), and caching the answers.
func (s *Server) lookup(ctx context.Context, clientIDs []string) ([]presence.Status, error) {
	view := s.deps.Live.View
	statuses, unheld := view.LookupMany(clientIDs)
	if len(unheld) == 0 {
		return statuses, nil
	}
	ids := make([]string, len(unheld))
	for i, at := range unheld {
		ids[i] = clientIDs[at]
	}
	ctx, cancel := s.storeContext(ctx)
	defer cancel()
	times, err := s.deps.Clients.LastEventTimes(ctx, ids)
	if err != nil {
		return nil, err
	}
	for i, at := range unheld {
		if times[i] > 0 {
			t := presence.FromMillis(times[i])
			statuses[at].LastEventAt = &t
		}
		view.Remember(ids[i], times[i])
	}
	return statuses, nil
}

// onlineBatchRequest is the body of POST /clients/online.
type onlineBatchRequest struct {
	ClientIDs clientIDList `json:"clientIds"`
}

// clientIDList decodes the clientIds array one id at a time and stops at
// the first beyond MaxBatchClientIDs: decoded whole, a 4 MiB body of empty
// strings became a million of them before their number was checked.
type clientIDList []string

func (l *clientIDList) UnmarshalJSON(data []byte) error {
	switch data[0] {
	case 'n': // null: left nil, "is missing"
		return nil
	case '[':
	default:
		// encoding/json names the field (clientIds) itself.
		return &json.UnmarshalTypeError{Value: jsonValueName(data[0]), Type: reflect.TypeFor[[]string]()}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil {
		return err
	}
	ids := clientIDList{}
	for dec.More() {
		if len(ids) == MaxBatchClientIDs {
			return presence.FieldErrorf("clientIds", "holds more than %d ids; at most %d are allowed", MaxBatchClientIDs, MaxBatchClientIDs)
		}
		var id string
		if err := dec.Decode(&id); err != nil {
			return err
		}
		ids = append(ids, id)
	}
	*l = ids
	return nil
}

// jsonValueName names the JSON value that starts with b, as encoding/json
// names it in an UnmarshalTypeError.
func jsonValueName(b byte) string {
	switch b {
	case '"':
		return "string"
	case '{':
		return "object"
	case 't', 'f':
		return "bool"
	}
	return "number"
}

// onlineBatchResponse has one result per requested id, in request order
// (encoded by hand, see statusjson.go).
type onlineBatchResponse struct {
	Results []presence.Status `json:"results"`
}

// handleOnlineBatch answers POST /clients/online for up to
// MaxBatchClientIDs ids, from one consistent state of the view.
func (s *Server) handleOnlineBatch(w http.ResponseWriter, r *http.Request) {
	body, err := s.readBody(w, r)
	if err != nil {
		return
	}
	var req onlineBatchRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		if _, tooMany := errors.AsType[*presence.Error](err); !tooMany {
			err = presence.FieldErrorf("body", "must be {\"clientIds\": [\"…\", …]}: %s", presence.JSONProblem(err))
		}
		s.writeError(w, r, err)
		return
	}
	if req.ClientIDs == nil {
		s.writeError(w, r, presence.FieldErrorf("clientIds", "is missing"))
		return
	}
	var problems presence.Problems
	for i, id := range req.ClientIDs {
		if err := presence.ValidateClientID(id); err != nil {
			problems = append(problems, presence.FieldProblem(fmt.Sprintf("clientIds[%d]", i), err))
		}
	}
	if err := problems.Err(); err != nil {
		s.writeError(w, r, err)
		return
	}
	if !s.viewCurrent(w, r) {
		return
	}
	statuses, err := s.lookup(r.Context(), req.ClientIDs)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	buf := make([]byte, 0, 64+160*len(statuses))
	buf = append(buf, `{"results":[`...)
	for i, st := range statuses {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendStatus(buf, st)
	}
	writeRawJSON(w, append(buf, "]}\n"...))
}

// clientIDParam returns the validated {clientId} of the path.
func (s *Server) clientIDParam(r *http.Request) (string, error) {
	return clientIDOf(r, chi.URLParam(r, "clientId"))
}

// clientIDOf decodes and validates a raw {clientId}: the router matches on
// the escaped path when the request has one (so a client id may contain an
// escaped '/'), and then hands back the escaped value.
func clientIDOf(r *http.Request, raw string) (string, error) {
	clientID := raw
	if r.URL.RawPath != "" {
		var err error
		if clientID, err = url.PathUnescape(raw); err != nil {
			return "", presence.FieldErrorf("clientId", "is not a valid escaped path segment")
		}
	}
	if err := presence.ValidateClientID(clientID); err != nil {
		return "", err
	}
	return clientID, nil
}
