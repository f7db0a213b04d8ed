package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/presenced/presenced/presence"
)

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type     string         `json:"type"`
	Title    string         `json:"title"`
	Status   int            `json:"status"`
	Detail   string         `json:"detail,omitempty"`
	Instance string         `json:"instance,omitempty"`
	Errors   []FieldProblem `json:"errors,omitempty"`
}

// FieldProblem names one offending input field.
type FieldProblem struct {
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// statusOf is the one place that translates the domain's error codes into
// HTTP status codes.
func statusOf(code string) int {
	switch code {
	case presence.EINVALID:
		return http.StatusBadRequest
	case presence.ENOTFOUND:
		return http.StatusNotFound
	case presence.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	case presence.EOVERLOADED:
		return http.StatusTooManyRequests
	case presence.ECONFLICT:
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

// writeError answers with the problem that err describes. Internal errors
// are logged with their cause; the client gets a message without internals.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := presence.ErrorCode(err)
	status := statusOf(code)
	p := Problem{Status: status, Detail: presence.ErrorMessage(err), Instance: r.URL.Path}
	if problems, ok := errors.AsType[presence.Problems](err); ok {
		for _, fe := range problems {
			p.Errors = append(p.Errors, FieldProblem{Field: fe.Field, Message: fe.Message})
		}
	} else if fe, ok := errors.AsType[*presence.Error](err); ok && fe.Field != "" {
		p.Errors = []FieldProblem{{Field: fe.Field, Message: fe.Message}}
	}
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	if status >= 500 {
		s.log.Error("request failed", "method", r.Method, "path", loggedPath(r), "code", code, "err", err)
	}
	s.writeProblem(w, p)
}

// writeProblem fills in the type and title from the status and writes p.
func (s *Server) writeProblem(w http.ResponseWriter, p Problem) {
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	if p.Type == "" {
		p.Type = "about:blank"
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	s.writeProblem(w, Problem{Status: http.StatusNotFound, Detail: "no route for " + r.Method + " " + r.URL.Path, Instance: r.URL.Path})
}

func (s *Server) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	s.writeProblem(w, Problem{Status: http.StatusMethodNotAllowed, Detail: "method " + r.Method + " is not allowed on " + r.URL.Path, Instance: r.URL.Path})
}

// The HTTP-layer problems below have no domain code: they are about the
// request as HTTP (its credentials, its size), not about presence.

// unauthorized answers 401 with the RFC 6750 challenge.
func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request, detail string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="presenced"`)
	s.writeProblem(w, Problem{Status: http.StatusUnauthorized, Detail: detail, Instance: r.URL.Path})
}

// forbidden answers 403 for a valid token that lacks the scope of the route
// (RFC 6750 insufficient_scope).
func (s *Server) forbidden(w http.ResponseWriter, r *http.Request, scope string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="presenced", error="insufficient_scope", scope="`+scope+`"`)
	s.writeProblem(w, Problem{Status: http.StatusForbidden, Detail: "the token does not grant the " + scope + " scope", Instance: r.URL.Path})
}

// tooLarge answers 413 for a body over the limit.
func (s *Server) tooLarge(w http.ResponseWriter, r *http.Request, limit int64) {
	s.writeProblem(w, Problem{Status: http.StatusRequestEntityTooLarge,
		Detail: "the request body is larger than " + strconv.FormatInt(limit, 10) + " bytes", Instance: r.URL.Path})
}

// loggedPath is a request's path as logs show it, cut to 256 bytes: a
// client chooses its length (up to the header limit) and lines are
// limited in number, not in size.
func loggedPath(r *http.Request) string { return presence.Truncate(r.URL.Path, 256) }
