package api

import (
	"context"
	"net/http"
	"time"
)

// deadlines ends a client that sends its body or reads the answer too
// slowly: the connection's read and write deadlines are set to
// RequestTimeout (plus a margin) for this request. The server itself has no
// ReadTimeout or WriteTimeout, because those would also end /stream.
func (s *Server) deadlines(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn := connDeadlines(w)
		if conn != nil {
			deadline := time.Now().Add(s.cfg.RequestTimeout + 5*time.Second)
			if r.Body != nil && r.Body != http.NoBody {
				_ = conn.SetReadDeadline(deadline)
			}
			_ = conn.SetWriteDeadline(deadline)
		}
		next.ServeHTTP(w, r)
	})
}

// deadliner is what net/http's response writer offers to set the
// connection's deadlines.
type deadliner interface {
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// connDeadlines finds the deadline setter under the middlewares' wrappers,
// as http.ResponseController does, without allocating one per request; nil
// when there is none (httptest's recorder).
func connDeadlines(w http.ResponseWriter) deadliner {
	for {
		if d, ok := w.(deadliner); ok {
			return d
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return nil
		}
		w = u.Unwrap()
	}
}

// timeout bounds the work of a request that queries the store: its context
// ends after RequestTimeout, so the query gives up and the request gets
// 503. Routes answered from memory skip it (a timer per lookup would cost
// more than the lookup); when one of them does need the store (a client
// the view does not hold, a listing of offline clients, online?at=), it
// bounds that query with storeContext.
func (s *Server) timeout(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := s.storeContext(r.Context())
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// storeContext bounds a store query made for a request by RequestTimeout.
func (s *Server) storeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.RequestTimeout)
}
