package api

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/presenced/presenced/presence"
)

// handleStream serves GET /stream: presence changes as Server-Sent Events.
//
//	retry: 2000
//
//	id: 1042
//	event: online
//	data: {"seq":1042,"clientId":"…","online":true,"state":"online","event":{"channelId":"…","eventType":"connect",…}}
//
// The id of every event is the store seq of its change; a client that
// reconnects with Last-Event-ID (or ?lastEventId=) gets the changes it
// missed, or a reset event when they are no longer remembered. A ready
// event (id = the stream position) follows the replay; heartbeat comments
// keep proxies from closing an idle stream. Filters: clientId (repeatable,
// up to 100) and prefix (repeatable, up to 100); a change is sent if it
// matches any.
func (s *Server) handleStream(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	clientIDs, prefixes := q["clientId"], q["prefix"]
	var problems presence.Problems
	if len(clientIDs) > MaxStreamClientIDs {
		problems = append(problems, presence.FieldErrorf("clientId", "%d client ids; at most %d are allowed", len(clientIDs), MaxStreamClientIDs))
	}
	for _, id := range clientIDs {
		problems.Add(presence.ValidateClientID(id))
	}
	if len(prefixes) > MaxStreamPrefixes {
		problems = append(problems, presence.FieldErrorf("prefix", "%d prefixes; at most %d are allowed", len(prefixes), MaxStreamPrefixes))
	}
	for _, p := range prefixes {
		if p == "" || len(p) > presence.MaxClientIDBytes {
			problems = append(problems, presence.FieldErrorf("prefix", "must be 1 to %d bytes", presence.MaxClientIDBytes))
		}
	}
	lastSeq, err := lastEventID(r)
	problems.Add(err)
	if err := problems.Err(); err != nil {
		s.writeError(w, r, err)
		return
	}
	if !s.viewCurrent(w, r) {
		return
	}
	sub, err := s.deps.Live.Stream.subscribe(matcher(clientIDs, prefixes), lastSeq)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer s.deps.Live.Stream.unsubscribe(sub.subscriber)

	// A keep-alive connection may carry the read deadline of an earlier
	// request (the deadlines middleware); a stream has none. Every write
	// has its own deadline instead (send), so a client that stops reading
	// cannot hold this goroutine, the connection's reader and its socket
	// for longer than StreamWriteTimeout, whether the write is a change or
	// a heartbeat.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	out := &sseWriter{w: w, rc: rc, timeout: s.cfg.StreamWriteTimeout}
	err = out.send(func() {
		w.WriteHeader(http.StatusOK)
		out.printf("retry: 2000\n\n")
		if sub.mustReset {
			out.reset(sub.seq, "Last-Event-ID is older than the changes this server remembers: refetch, then follow")
		}
		for _, e := range sub.replay {
			out.change(e)
		}
		out.printf("id: %d\nevent: ready\ndata: {\"seq\":%d}\n\n", sub.seq, sub.seq)
	})
	if err != nil {
		return
	}

	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case e := <-sub.ch:
			err = out.send(func() {
				out.change(e)
				// Send what else is waiting in one write.
				for n := len(sub.ch); n > 0; n-- {
					out.change(<-sub.ch)
				}
			})
		case <-heartbeat.C:
			err = out.send(func() { out.printf(": heartbeat %d\n\n", time.Now().Unix()) })
		case <-sub.done:
			switch {
			case sub.reloaded.Load():
				_ = out.send(func() { out.reset(0, "the presence view was reloaded from the store: refetch, then follow") })
			case sub.lagging.Load():
				_ = out.send(func() { out.printf(": disconnected for not keeping up; reconnect with Last-Event-ID\n\n") })
				// Dropped means gone: the connection is closed, not kept
				// for another request of a client that does not read.
				out.closeConnection()
			}
			return
		case <-r.Context().Done():
			return
		}
		if err != nil {
			// The client did not take the write in time: the server
			// closes a connection whose write failed.
			return
		}
	}
}

// sseWriter writes events, remembering the first write error. Each send
// is bounded by the write deadline.
type sseWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	err     error
}

// send runs write (printf, change, reset calls) and flushes it to the
// client, all within the write timeout.
func (o *sseWriter) send(write func()) error {
	if o.err != nil {
		return o.err
	}
	// Not every ResponseWriter supports deadlines (httptest's recorder
	// does not); the server's always does.
	_ = o.rc.SetWriteDeadline(time.Now().Add(o.timeout))
	write()
	if o.err == nil {
		o.err = o.rc.Flush()
	}
	return o.err
}

// closeConnection closes the stream's connection (HTTP/1.x). Under
// HTTP/2, where the connection carries other requests, ending the handler
// ends the stream alone.
func (o *sseWriter) closeConnection() {
	// Hijacking flushes what is still buffered, under the write deadline.
	if conn, _, err := o.rc.Hijack(); err == nil {
		_ = conn.Close()
	}
}

func (o *sseWriter) printf(format string, args ...any) {
	if o.err == nil {
		_, o.err = fmt.Fprintf(o.w, format, args...)
	}
}

func (o *sseWriter) change(e streamEntry) {
	event := "offline"
	if e.online {
		event = "online"
	}
	o.printf("id: %d\nevent: %s\ndata: %s\n\n", e.seq, event, e.data)
}

func (o *sseWriter) reset(seq int64, reason string) {
	o.printf("event: reset\ndata: {\"seq\":%d,\"reason\":%q}\n\n", seq, reason)
}

// lastEventID reads the resumption point: the Last-Event-ID header that
// EventSource sends on reconnect, or ?lastEventId= for clients that cannot
// set headers. It returns nil when there is none.
func lastEventID(r *http.Request) (*int64, error) {
	v := r.Header.Get("Last-Event-ID")
	field := "Last-Event-ID"
	if v == "" {
		v, field = r.URL.Query().Get("lastEventId"), "lastEventId"
	}
	if v = strings.TrimSpace(v); v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return nil, presence.FieldErrorf(field, "must be the id of an event of this stream (a non-negative integer)")
	}
	return &n, nil
}
