package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var quiet = slog.New(slog.DiscardHandler)

// harness is the API on a real store (a fresh database), fed by the real
// Follower, served by httptest.
type harness struct {
	t     *testing.T
	store *pgstore.Store
	live  *Live
	srv   *Server
	http  *httptest.Server
}

// storeIngester adapts the store to EventIngester, as cmd/presenced does.
type storeIngester struct{ store *pgstore.Store }

func (i storeIngester) Ingest(ctx context.Context, events []presence.Event) ([]presence.StoredEvent, error) {
	result, err := i.store.Ingest(ctx, events)
	return result.Applied, err
}

func newHarness(t *testing.T, configure ...func(*Config)) *harness {
	t.Helper()
	return startHarness(t, 100_000, configure...)
}

// startHarness is newHarness with a view that holds at most offlineCap
// offline clients.
func startHarness(t *testing.T, offlineCap int, configure ...func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, store: pgtest.NewStore(t), live: NewLive(offlineCap, 100)}
	follower := h.store.NewFollower(h.live, pgstore.FollowOptions{PollInterval: 50 * time.Millisecond, Logger: quiet})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = follower.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for !h.live.View.Current() {
		if time.Now().After(deadline) {
			t.Fatal("view not loaded after 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cfg := Config{Heartbeat: time.Hour, Logger: quiet}
	for _, c := range configure {
		c(&cfg)
	}
	h.srv = New(cfg, Deps{Live: h.live, Channels: h.store, Nodes: h.store, History: h.store, Counter: h.store, Clients: h.store, Spans: h.store, Refused: h.store,
		Ingester: storeIngester{h.store}, Readiness: h.store})
	h.http = httptest.NewServer(h.srv)
	t.Cleanup(func() { h.srv.CloseStreams(); h.http.Close() })
	return h
}

// ev builds a valid event; time is ms since the epoch.
func ev(clientID, channelID string, typ presence.EventType, ms int64) presence.Event {
	e := presence.Event{ClientID: clientID, ChannelID: channelID, Type: typ, Time: ms, ClientIP: "192.0.2.1:5000", Node: "n1", Epoch: "e1"}
	if typ == presence.EventTCPClean {
		e.Reason = presence.ReasonClientClosed
	}
	return e
}

// apply stores events and waits until the view has folded them in.
func (h *harness) apply(events ...presence.Event) {
	h.t.Helper()
	res, err := h.store.Apply(context.Background(), events)
	if err != nil {
		h.t.Fatalf("apply: %v", err)
	}
	if len(res.Applied) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if !h.live.waitFor(ctx, res.Applied[len(res.Applied)-1].Seq) {
			h.t.Fatal("view did not catch up within 5s")
		}
	}
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) problem(t *testing.T) Problem {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json; body %s", ct, r.body)
	}
	var p Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("decode problem %s: %v", r.body, err)
	}
	return p
}

// do sends a request through the handler (httptest.Recorder).
func (h *harness) do(method, target string, body string, header ...string) response {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.srv.ServeHTTP(rec, req)
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

// getJSON GETs target, expects want, and decodes the body into v.
func (h *harness) getJSON(target string, want int, v any) {
	h.t.Helper()
	r := h.do(http.MethodGet, target, "")
	if r.status != want {
		h.t.Fatalf("GET %s: status %d, want %d; body %s", target, r.status, want, r.body)
	}
	if v != nil {
		if err := json.Unmarshal(r.body, v); err != nil {
			h.t.Fatalf("GET %s: decode %s: %v", target, r.body, err)
		}
	}
}

// expectProblem sends a request and checks the status and, when field is
// not empty, that the problem names that field.
func (h *harness) expectProblem(method, target, body string, status int, field string, header ...string) Problem {
	h.t.Helper()
	r := h.do(method, target, body, header...)
	if r.status != status {
		h.t.Fatalf("%s %s: status %d, want %d; body %s", method, target, r.status, status, r.body)
	}
	p := r.problem(h.t)
	if p.Status != status || p.Title == "" || p.Type == "" {
		h.t.Fatalf("%s %s: problem %+v", method, target, p)
	}
	if field != "" {
		found := false
		for _, fe := range p.Errors {
			found = found || fe.Field == field
		}
		if !found {
			h.t.Fatalf("%s %s: problem %s does not name field %q", method, target, r.body, field)
		}
	}
	return p
}

// sseEvent is one Server-Sent Event as read by sseReader.
type sseEvent struct {
	ID, Event, Data string
	Comment         string
}

// sseReader reads a text/event-stream.
type sseReader struct {
	t    *testing.T
	resp *http.Response
	r    *bufio.Reader
	ch   chan sseEvent
}

// openStream opens GET target on the real server.
func (h *harness) openStream(target string, header ...string) *sseReader {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.http.URL+target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("GET %s: %v", target, err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		h.t.Fatalf("GET %s: status %d: %s", target, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		h.t.Fatalf("Content-Type %q", ct)
	}
	s := &sseReader{t: h.t, resp: resp, r: bufio.NewReader(resp.Body), ch: make(chan sseEvent, 1000)}
	go s.loop()
	h.t.Cleanup(func() { resp.Body.Close() })
	return s
}

func (s *sseReader) loop() {
	defer close(s.ch)
	var e sseEvent
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if e != (sseEvent{}) {
				s.ch <- e
			}
			e = sseEvent{}
		case strings.HasPrefix(line, ":"):
			e.Comment = strings.TrimSpace(line[1:])
		default:
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimPrefix(v, " ")
			switch k {
			case "id":
				e.ID = v
			case "event":
				e.Event = v
			case "data":
				e.Data = v
			}
		}
	}
}

// next returns the next event that is not a retry line, failing after 5s.
func (s *sseReader) next() sseEvent {
	s.t.Helper()
	for {
		select {
		case e, ok := <-s.ch:
			if !ok {
				s.t.Fatal("stream ended")
			}
			if e.Event == "" && e.Comment == "" && e.Data == "" {
				continue // retry: line
			}
			return e
		case <-time.After(5 * time.Second):
			s.t.Fatal("no event within 5s")
		}
	}
}

// nextEvent skips comments.
func (s *sseReader) nextEvent() sseEvent {
	s.t.Helper()
	for {
		if e := s.next(); e.Event != "" {
			return e
		}
	}
}

// ended reports whether the stream ends within 5s.
func (s *sseReader) ended() bool {
	timeout := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-s.ch:
			if !ok {
				return true
			}
		case <-timeout:
			return false
		}
	}
}

func decodeChange(t *testing.T, data string) changeJSON {
	t.Helper()
	var c changeJSON
	if err := json.NewDecoder(bytes.NewReader([]byte(data))).Decode(&c); err != nil {
		t.Fatalf("decode change %q: %v", data, err)
	}
	return c
}
