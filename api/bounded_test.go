package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/presenced/presenced/presence"
)

// TestAnswersStayRightBeyondTheViewsBound runs the API on a view that
// may hold only 3 offline clients while 40 have come and gone: every
// lookup, batch, listing and count still tells the store's truth, the
// last event time of a dropped client coming from the store.
func TestAnswersStayRightBeyondTheViewsBound(t *testing.T) {
	h := startHarness(t, 3)
	var events []presence.Event
	for i := range 40 {
		id := fmt.Sprintf("GID_b@@@gone-%02d", i)
		events = append(events, ev(id, "ch-"+id, presence.EventConnect, int64(1000+i)),
			ev(id, "ch-"+id, presence.EventTCPClean, int64(2000+i)))
	}
	events = append(events, ev("GID_b@@@here", "ch-here", presence.EventConnect, 5000))
	h.apply(events...)
	if s := h.live.View.Stats(); s.HeldClients > 1+3 || s.OnlineClients != 1 || s.EvictedClients == 0 {
		t.Fatalf("view %+v: want the online client and at most 3 offline", s)
	}

	for i := range 40 {
		var st presence.Status
		h.getJSON(fmt.Sprintf("/clients/GID_b@@@gone-%02d/online", i), http.StatusOK, &st)
		if st.Online || st.State != presence.StateOffline || st.LastEventAt == nil || presence.Millis(*st.LastEventAt) != int64(2000+i) {
			t.Fatalf("gone-%02d: %+v", i, st)
		}
	}
	var st presence.Status
	h.getJSON("/clients/GID_b@@@here/online", http.StatusOK, &st)
	if !st.Online || presence.Millis(*st.Since) != 5000 {
		t.Fatalf("here: %+v", st)
	}
	var never presence.Status
	h.getJSON("/clients/never-seen/online", http.StatusOK, &never)
	if never.Online || never.LastEventAt != nil {
		t.Fatalf("never seen: %+v", never)
	}
	if s := h.live.View.Stats(); s.HeldClients > 1+3 {
		t.Fatalf("lookups grew the view past its bound: %+v", s)
	}

	var batch onlineBatchResponse
	resp := h.do(http.MethodPost, "/clients/online", `{"clientIds":["GID_b@@@gone-07","GID_b@@@here","never-seen","GID_b@@@gone-39"]}`)
	if err := json.Unmarshal(resp.body, &batch); resp.status != http.StatusOK || err != nil {
		t.Fatalf("batch: %d %s %v", resp.status, resp.body, err)
	}
	r := batch.Results
	if len(r) != 4 || r[0].Online || presence.Millis(*r[0].LastEventAt) != 2007 || !r[1].Online ||
		r[2].Online || r[2].LastEventAt != nil || presence.Millis(*r[3].LastEventAt) != 2039 {
		t.Fatalf("batch %+v", r)
	}

	// Offline listing comes from the store: all 40, in pages of 15.
	var listed []presence.Status
	cursor := ""
	for pages := 0; ; pages++ {
		var p page[presence.Status]
		h.getJSON("/clients?state=offline&prefix="+url.QueryEscape("GID_b@@@")+"&limit=15&cursor="+cursor, http.StatusOK, &p)
		listed = append(listed, p.Items...)
		if p.NextCursor == "" {
			break
		}
		if pages > 4 {
			t.Fatal("too many pages")
		}
		cursor = url.QueryEscape(p.NextCursor)
	}
	if len(listed) != 40 {
		t.Fatalf("offline listing has %d clients, want 40", len(listed))
	}
	for i, st := range listed {
		if want := fmt.Sprintf("GID_b@@@gone-%02d", i); st.ClientID != want || st.Online || presence.Millis(*st.LastEventAt) != int64(2000+i) {
			t.Fatalf("item %d: %+v, want %s offline", i, st, want)
		}
	}
	var all page[presence.Status]
	h.getJSON("/clients?state=all&limit=100", http.StatusOK, &all)
	if len(all.Items) != 41 || !all.Items[40].Online || all.Items[40].ClientID != "GID_b@@@here" {
		t.Fatalf("all: %d items", len(all.Items))
	}

	var stats statsResponse
	h.getJSON("/stats", http.StatusOK, &stats)
	if stats.KnownClients != 41 || stats.OnlineClients != 1 {
		t.Fatalf("stats %+v", stats)
	}
}
