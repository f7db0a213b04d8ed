package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

func TestStreamSendsOnlineAndOffline(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.RequestTimeout = 50 * time.Millisecond })
	s := h.openStream("/stream")
	ready := s.nextEvent()
	if ready.Event != "ready" || ready.ID == "" {
		t.Fatalf("first event %+v, want ready with an id", ready)
	}
	// Streams are exempt from the request timeout. The timeout is a real
	// context deadline (no clock to move), so real time has to pass — but
	// exactly until a request timeout started after the stream's has
	// fired, not for a guessed while: storeContext is what s.timeout gives
	// each request. Had /stream been bounded, its context (started
	// earlier) would have ended by now and the stream with it.
	expired, cancel := h.srv.storeContext(context.Background())
	defer cancel()
	<-expired.Done()
	if err := expired.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("request timeout context ended with %v, want the deadline", err)
	}

	connect := ev("GID_s@@@1", "c1", presence.EventConnect, 1000)
	h.apply(connect)
	on := s.nextEvent()
	c := decodeChange(t, on.Data)
	// time is the event's own field, ms since the epoch as in /events.
	if on.Event != "online" || on.ID != strconv.FormatInt(c.Seq, 10) || c.ClientID != "GID_s@@@1" || !c.Online ||
		c.Event.EventType != presence.EventConnect || c.Event.ChannelID != "c1" || c.Event.Node != "n1" || c.Event.Time != connect.Time {
		t.Fatalf("online event %+v %+v", on, c)
	}
	// A second channel and a disconnect change nothing.
	h.apply(ev("GID_s@@@1", "c2", presence.EventConnect, 1100), ev("GID_s@@@1", "c1", presence.EventDisconnect, 1200))
	h.apply(ev("GID_s@@@1", "c1", presence.EventTCPClean, 1300), ev("GID_s@@@1", "c2", presence.EventTCPClean, 1400))
	off := s.nextEvent()
	c = decodeChange(t, off.Data)
	if off.Event != "offline" || c.Online || c.Event.EventType != presence.EventTCPClean || c.Event.Reason != presence.ReasonClientClosed {
		t.Fatalf("offline event %+v %+v", off, c)
	}
	if id, _ := strconv.ParseInt(off.ID, 10, 64); id <= c.Seq-1 || off.ID <= on.ID {
		t.Fatalf("ids not increasing: %s then %s", on.ID, off.ID)
	}
}

func TestStreamFilters(t *testing.T) {
	h := newHarness(t)
	s := h.openStream("/stream?clientId=solo&prefix=GID_f@@@")
	s.nextEvent() // ready
	h.apply(ev("other", "o", presence.EventConnect, 1), ev("GID_g@@@1", "g", presence.EventConnect, 1))
	h.apply(ev("solo", "s", presence.EventConnect, 1))
	h.apply(ev("GID_f@@@1", "f", presence.EventConnect, 1))
	if e := decodeChange(t, s.nextEvent().Data); e.ClientID != "solo" {
		t.Fatalf("first match %+v", e)
	}
	if e := decodeChange(t, s.nextEvent().Data); e.ClientID != "GID_f@@@1" {
		t.Fatalf("second match %+v", e)
	}
}

func TestStreamResumesWithLastEventID(t *testing.T) {
	h := newHarness(t)
	s := h.openStream("/stream")
	s.nextEvent()
	h.apply(ev("r1", "r1", presence.EventConnect, 1))
	first := s.nextEvent()
	h.apply(ev("r2", "r2", presence.EventConnect, 1))
	h.apply(ev("r3", "r3", presence.EventConnect, 1))

	// Reconnect after the first change: the two others are replayed, then ready.
	s2 := h.openStream("/stream", "Last-Event-ID", first.ID)
	for _, want := range []string{"r2", "r3"} {
		if c := decodeChange(t, s2.nextEvent().Data); c.ClientID != want {
			t.Fatalf("replayed %+v, want %s", c, want)
		}
	}
	if e := s2.nextEvent(); e.Event != "ready" {
		t.Fatalf("after replay %+v, want ready", e)
	}
	// The query parameter works too, and an id newer than the stream resets.
	s3 := h.openStream("/stream?lastEventId=999999")
	if e := s3.nextEvent(); e.Event != "reset" {
		t.Fatalf("future id: %+v, want reset", e)
	}
	h.expectProblem(http.MethodGet, "/stream", "", http.StatusBadRequest, "Last-Event-ID", "Last-Event-ID", "abc")
	h.expectProblem(http.MethodGet, "/stream?clientId=a%2Bb", "", http.StatusBadRequest, "clientId")
	h.expectProblem(http.MethodGet, "/stream?prefix=", "", http.StatusBadRequest, "prefix")
	h.expectProblem(http.MethodGet, "/stream?prefix=p"+strings.Repeat("&prefix=p", MaxStreamPrefixes), "", http.StatusBadRequest, "prefix")
}

func TestStreamResetsWhenResumePointIsForgotten(t *testing.T) {
	h := newHarness(t) // the ring holds 100 changes
	s := h.openStream("/stream")
	s.nextEvent()
	h.apply(ev("first", "first", presence.EventConnect, 1))
	first := s.nextEvent()
	var events []presence.Event
	for i := range 150 {
		events = append(events, ev(fmt.Sprintf("many-%03d", i), fmt.Sprintf("m%d", i), presence.EventConnect, 1))
	}
	h.apply(events...)
	s2 := h.openStream("/stream", "Last-Event-ID", first.ID)
	if e := s2.nextEvent(); e.Event != "reset" {
		t.Fatalf("resume from a forgotten id: %+v, want reset", e)
	}
	if e := s2.nextEvent(); e.Event != "ready" {
		t.Fatalf("after reset: %+v, want ready", e)
	}
}

func TestStreamDisconnectsLaggard(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.StreamBuffer = 2 })
	s := h.openStream("/stream")
	s.nextEvent()
	// The subscriber's buffer holds two changes; publishing ten at once,
	// faster than the handler can take them, must not block the feed.
	var changes []presence.Change
	for i := range 10 {
		changes = append(changes, presence.Change{ClientID: fmt.Sprint("lag", i), Online: true,
			Channel: presence.ChannelState{ChannelID: fmt.Sprint(i), Open: true, Seq: int64(1000 + i)}})
	}
	done := make(chan struct{})
	go func() { h.live.Stream.publish(1009, changes); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("publish blocked on a slow subscriber")
	}
	if !s.ended() {
		t.Fatal("laggard not disconnected")
	}
	if h.live.Stream.dropped.Load() != 1 {
		t.Fatalf("laggards counted %d", h.live.Stream.dropped.Load())
	}
}

func TestStreamHeartbeatAndShutdown(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Heartbeat = 20 * time.Millisecond })
	s := h.openStream("/stream")
	s.nextEvent()
	if e := s.next(); e.Comment == "" {
		t.Fatalf("got %+v, want a heartbeat comment", e)
	}
	h.srv.CloseStreams()
	if !s.ended() {
		t.Fatal("CloseStreams did not end the stream")
	}
	h.expectProblem(http.MethodGet, "/stream", "", http.StatusServiceUnavailable, "")
}

func TestStreamCap(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxStreams = 1 })
	s := h.openStream("/stream")
	s.nextEvent()
	req, _ := http.NewRequest(http.MethodGet, h.http.URL+"/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second stream: %d, want 429", resp.StatusCode)
	}
}

// TestStreamResumesExactlyWithConcurrentWriters has four writers store
// connects at once, whose transactions commit in any order, while a
// subscriber reads part of the stream and leaves; resuming with the id of
// the last change it got, it receives every other change once: across both
// streams every client came online exactly once, with ids in increasing
// order.
func TestStreamResumesExactlyWithConcurrentWriters(t *testing.T) {
	h := newHarness(t)
	s1 := h.openStream("/stream")
	s1.nextEvent() // ready

	const writers, perWriter = 4, 20 // within the ring of the harness (100)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	var mu sync.Mutex
	var newest int64
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				id := fmt.Sprintf("w%d-%d", w, i)
				res, err := h.store.Apply(context.Background(), []presence.Event{ev(id, id, presence.EventConnect, 1)})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				newest = max(newest, res.Applied[0].Seq)
				mu.Unlock()
			}
		}()
	}

	seen := map[string]int{}
	var ids []int64
	take := func(e sseEvent) {
		t.Helper()
		c := decodeChange(t, e.Data)
		id, err := strconv.ParseInt(e.ID, 10, 64)
		if err != nil || id != c.Seq || !c.Online {
			t.Fatalf("change %+v with id %q", c, e.ID)
		}
		seen[c.ClientID]++
		ids = append(ids, id)
	}
	for range writers * perWriter / 2 {
		take(s1.nextEvent())
	}
	s1.resp.Body.Close()
	last := ids[len(ids)-1]

	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !h.live.waitFor(ctx, newest) {
		t.Fatal("view did not catch up within 10s")
	}

	s2 := h.openStream("/stream", "Last-Event-ID", strconv.FormatInt(last, 10))
	for {
		e := s2.nextEvent()
		if e.Event == "ready" {
			break
		}
		take(e)
	}
	if len(seen) != writers*perWriter {
		t.Fatalf("%d clients came online over both streams, want %d", len(seen), writers*perWriter)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("client %s came online %d times", id, n)
		}
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			t.Fatalf("id %d after %d", ids[i], ids[i-1])
		}
	}
}
