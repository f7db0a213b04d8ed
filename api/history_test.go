package api

import (
	"net/http"
	"testing"

	"github.com/presenced/presenced/presence"
)

func TestChannels(t *testing.T) {
	h := newHarness(t)
	h.apply(ev("h1", "old", presence.EventConnect, 1000), ev("h1", "old", presence.EventDisconnect, 1500), ev("h1", "old", presence.EventTCPClean, 1600))
	h.apply(ev("h1", "new", presence.EventConnect, 2000))
	var out clientItems[presence.Channel]
	h.getJSON("/clients/h1/channels", http.StatusOK, &out)
	if out.ClientID != "h1" || len(out.Items) != 2 {
		t.Fatalf("channels %+v", out)
	}
	open, closed := out.Items[0], out.Items[1]
	if open.ChannelID != "new" || !open.Open || open.ClientIP != "192.0.2.1:5000" || open.Node != "n1" || open.TCPCleanAt != nil {
		t.Fatalf("open channel first: %+v", open)
	}
	if closed.ChannelID != "old" || closed.Open || closed.Reason != presence.ReasonClientClosed || closed.ClosedBy != "client" ||
		closed.DurationMillis == nil || *closed.DurationMillis != 600 || closed.DisconnectAt == nil {
		t.Fatalf("closed channel: %+v", closed)
	}
	out = clientItems[presence.Channel]{}
	h.getJSON("/clients/h1/channels?limit=1", http.StatusOK, &out)
	if len(out.Items) != 1 || out.Items[0].ChannelID != "new" {
		t.Fatalf("limit 1: %+v", out)
	}
	out = clientItems[presence.Channel]{}
	h.getJSON("/clients/nobody/channels", http.StatusOK, &out)
	if out.Items == nil || len(out.Items) != 0 {
		t.Fatalf("unknown client: %+v", out)
	}
}

func TestEventsPaginateBothWays(t *testing.T) {
	h := newHarness(t)
	for i := range 5 {
		ch := string(rune('a' + i))
		h.apply(ev("h2", ch, presence.EventConnect, int64(1000*(i+1))))
	}
	h.apply(ev("h3", "z", presence.EventConnect, 1000)) // another client's

	walk := func(query string) []int64 {
		var times []int64
		cursor := ""
		for range 10 {
			var p page[presence.StoredEvent]
			h.getJSON("/clients/h2/events?limit=2"+query+cursor, http.StatusOK, &p)
			for _, e := range p.Items {
				if e.ClientID != "h2" || e.Seq == 0 || e.AppliedAt.IsZero() {
					t.Fatalf("event %+v", e)
				}
				times = append(times, e.Time)
			}
			if p.NextCursor == "" {
				return times
			}
			cursor = "&cursor=" + p.NextCursor
		}
		t.Fatal("pagination does not end")
		return nil
	}
	if got := walk(""); !equal(got, []int64{5000, 4000, 3000, 2000, 1000}) {
		t.Fatalf("desc (default): %v", got)
	}
	if got := walk("&order=asc"); !equal(got, []int64{1000, 2000, 3000, 4000, 5000}) {
		t.Fatalf("asc: %v", got)
	}
	// from inclusive, to exclusive; ms or RFC 3339.
	if got := walk("&order=asc&from=2000&to=1970-01-01T00:00:04Z"); !equal(got, []int64{2000, 3000}) {
		t.Fatalf("range: %v", got)
	}
	if got := walk("&from=4000"); !equal(got, []int64{5000, 4000}) {
		t.Fatalf("from only: %v", got)
	}
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
