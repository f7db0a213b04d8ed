package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/presenced/presenced/presence"
)

// handleOnline answers GET /clients/{clientId}/online from the in-memory
// view: no database round trip, so callers can ask on every request. An
// unknown client is simply offline.
func (s *Server) handleOnline(w http.ResponseWriter, r *http.Request) {
	clientID, err := s.clientIDParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !s.deps.Live.View.Current() {
		s.writeError(w, r, errViewNotCurrent)
		return
	}
	buf := make([]byte, 0, 256)
	writeRawJSON(w, append(appendStatus(buf, s.deps.Live.View.Status(clientID)), '\n'))
}

// onlineBatchRequest is the body of POST /clients/online.
type onlineBatchRequest struct {
	ClientIDs []string `json:"clientIds"`
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
		s.writeError(w, r, presence.FieldErrorf("body", "must be {\"clientIds\": [\"…\", …]}: %v", err))
		return
	}
	if req.ClientIDs == nil {
		s.writeError(w, r, presence.FieldErrorf("clientIds", "is missing"))
		return
	}
	if len(req.ClientIDs) > MaxBatchClientIDs {
		s.writeError(w, r, presence.FieldErrorf("clientIds", "holds %d ids; at most %d are allowed", len(req.ClientIDs), MaxBatchClientIDs))
		return
	}
	var problems presence.Problems
	for i, id := range req.ClientIDs {
		if err := presence.ValidateClientID(id); err != nil {
			pe := err.(*presence.Error)
			problems = append(problems, presence.FieldErrorf(fmt.Sprintf("clientIds[%d]", i), "%s", pe.Message))
		}
	}
	if err := problems.Err(); err != nil {
		s.writeError(w, r, err)
		return
	}
	if !s.deps.Live.View.Current() {
		s.writeError(w, r, errViewNotCurrent)
		return
	}
	statuses := s.deps.Live.View.StatusMany(req.ClientIDs)
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
	clientID, err := pathParam(r, "clientId")
	if err != nil {
		return "", presence.FieldErrorf("clientId", "is not a valid escaped path segment")
	}
	if err := presence.ValidateClientID(clientID); err != nil {
		return "", err
	}
	return clientID, nil
}
