package test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// sseEvent is one Server-Sent Event.
type sseEvent struct{ ID, Event, Data string }

// openSSE opens GET path as an event stream and returns its events.
func openSSE(t *testing.T, p *proc, path string, header ...string) <-chan sseEvent {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+p.HTTPAddr+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	t.Cleanup(func() { resp.Body.Close() })
	events := make(chan sseEvent, 100)
	go func() {
		defer close(events)
		r := bufio.NewReader(resp.Body)
		var e sseEvent
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\n")
			if line == "" {
				if e.Event != "" {
					events <- e
				}
				e = sseEvent{}
				continue
			}
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
	}()
	return events
}

func nextSSE(t *testing.T, events <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case e, ok := <-events:
		if !ok {
			t.Fatal("stream ended")
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return sseEvent{}
}

// change is the data of an online/offline event.
type change struct {
	Seq      int64
	ClientID string
	Online   bool
	Event    struct {
		ChannelID, EventType, Reason, Node, ClientIP string
	}
}

func TestStreamShowsClientGoingOnlineAndOffline(t *testing.T) {
	p := startServe(t, pgtest.URL(t))
	events := openSSE(t, p, "/stream?prefix="+url.QueryEscape("GID_sse@@@"))
	if e := nextSSE(t, events); e.Event != "ready" {
		t.Fatalf("first event %+v", e)
	}
	pahoConnect(t, p.MQTTAddr, "GID_other@@@x", 30*time.Second) // filtered out
	conn, code := rawConnect(t, p.MQTTAddr, "GID_sse@@@dev-1", 60)
	if code != 0 {
		t.Fatalf("CONNACK %d", code)
	}
	on := nextSSE(t, events)
	var c change
	if err := json.Unmarshal([]byte(on.Data), &c); err != nil {
		t.Fatal(err)
	}
	if on.Event != "online" || c.ClientID != "GID_sse@@@dev-1" || !c.Online || c.Event.EventType != "connect" ||
		c.Event.Node != p.Node || c.Event.ChannelID == "" || on.ID == "" {
		t.Fatalf("online event %+v", on)
	}

	abortClose(conn) // the device dies
	off := nextSSE(t, events)
	c = change{}
	if err := json.Unmarshal([]byte(off.Data), &c); err != nil {
		t.Fatal(err)
	}
	if off.Event != "offline" || c.Online || c.Event.EventType != "tcpclean" || c.Event.Reason == "" || off.ID <= on.ID {
		t.Fatalf("offline event %+v after %+v", off, on)
	}

	// A dashboard that reconnects with the last id it saw gets what it missed.
	resumed := openSSE(t, p, "/stream?prefix="+url.QueryEscape("GID_sse@@@"), "Last-Event-ID", on.ID)
	if e := nextSSE(t, resumed); e.Event != "offline" || e.ID != off.ID {
		t.Fatalf("resumed with %+v, want the offline event %s", e, off.ID)
	}

	// Graceful shutdown ends the stream.
	p.stop()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("stream still open after shutdown")
		}
	}
}
