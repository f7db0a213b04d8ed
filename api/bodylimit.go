package api

import (
	"errors"
	"io"
	"net/http"
)

// limitBody caps the request body at MaxBodyBytes; readBody turns the
// overflow into 413.
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > s.cfg.MaxBodyBytes {
			s.tooLarge(w, r, s.cfg.MaxBodyBytes)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		next.ServeHTTP(w, r)
	})
}

// errAnswered tells a handler that readBody already wrote the response.
var errAnswered = errors.New("response already written")

// readBody reads the whole body. On failure it answers (413 for a body over
// the limit) and returns errAnswered.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	if err == nil {
		return body, nil
	}
	if maxErr, ok := errors.AsType[*http.MaxBytesError](err); ok {
		s.tooLarge(w, r, maxErr.Limit)
		return nil, errAnswered
	}
	// The client went away or was too slow (read deadline): nobody to
	// answer, but say so in case someone still listens.
	s.writeProblem(w, Problem{Status: http.StatusBadRequest, Detail: "could not read the request body", Instance: r.URL.Path})
	return nil, errAnswered
}
