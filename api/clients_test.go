package api

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/presenced/presenced/presence"
)

func TestListClientsPaginates(t *testing.T) {
	h := newHarness(t)
	var events []presence.Event
	for i := range 25 {
		id := fmt.Sprintf("GID_x@@@d%02d", i)
		events = append(events, ev(id, "cx"+fmt.Sprint(i), presence.EventConnect, 100))
		if i%5 == 0 { // every fifth is offline again
			events = append(events, ev(id, "cx"+fmt.Sprint(i), presence.EventTCPClean, 200))
		}
	}
	events = append(events, ev("GID_y@@@d00", "cy", presence.EventConnect, 100))
	h.apply(events...)

	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		var p page[presence.Status]
		h.getJSON("/clients?state=online&prefix="+url.QueryEscape("GID_x@@@")+"&limit=7&cursor="+cursor, http.StatusOK, &p)
		for _, s := range p.Items {
			if !s.Online {
				t.Fatalf("offline client %+v in state=online", s)
			}
			got = append(got, s.ClientID)
		}
		if p.NextCursor == "" {
			break
		}
		if pages > 5 {
			t.Fatal("too many pages")
		}
		cursor = url.QueryEscape(p.NextCursor)
	}
	if len(got) != 20 || got[0] != "GID_x@@@d01" || got[19] != "GID_x@@@d24" {
		t.Fatalf("listed %d: %v", len(got), got)
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("not in id order: %v", got)
		}
	}

	var p page[presence.Status]
	h.getJSON("/clients?state=offline&prefix=GID_x", http.StatusOK, &p)
	if len(p.Items) != 5 || p.Items[0].ClientID != "GID_x@@@d00" || p.NextCursor != "" {
		t.Fatalf("offline: %+v", p)
	}
	p = page[presence.Status]{}
	h.getJSON("/clients?state=all", http.StatusOK, &p)
	if len(p.Items) != 26 {
		t.Fatalf("all: %d items", len(p.Items))
	}
	p = page[presence.Status]{}
	h.getJSON("/clients", http.StatusOK, &p) // online by default
	if len(p.Items) != 21 {
		t.Fatalf("default: %d items", len(p.Items))
	}
}

func TestListClientsErrors(t *testing.T) {
	h := newHarness(t)
	for target, field := range map[string]string{
		"/clients?state=gone":            "state",
		"/clients?limit=0":               "limit",
		"/clients?limit=1001":            "limit",
		"/clients?limit=ten":             "limit",
		"/clients?cursor=%21%21":         "cursor",
		"/clients?prefix=" + long(129):   "prefix",
		"/clients/x/channels?limit=-1":   "limit",
		"/clients/a+b/channels":          "clientId",
		"/stats?prefix=" + long(129):     "prefix",
		"/clients/x/events?order=up":     "order",
		"/clients/x/events?cursor=abc":   "cursor",
		"/clients/x/events?from=friday":  "from",
		"/clients/x/events?to=yesterday": "to",
		"/clients/x/events?from=2025-01-01T00:00:00Z&to=2025-03-01T00:00:00Z": "to",
		"/clients/x/events?from=2025-01-02T00:00:00Z&to=2025-01-01T00:00:00Z": "to",
		"/clients/a%23b/events": "clientId",
	} {
		t.Run(target, func(t *testing.T) {
			h.t = t
			h.expectProblem(http.MethodGet, target, "", http.StatusBadRequest, field)
		})
	}
}

func long(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'x'
	}
	return string(b)
}

func TestStats(t *testing.T) {
	h := newHarness(t)
	h.apply(
		ev("GID_s@@@1", "s1", presence.EventConnect, 100),
		ev("GID_s@@@1", "s2", presence.EventConnect, 110),
		ev("GID_s@@@2", "s3", presence.EventConnect, 100),
		ev("GID_s@@@2", "s3", presence.EventDisconnect, 150),
		ev("GID_s@@@2", "s3", presence.EventTCPClean, 160),
		ev("other", "o1", presence.EventConnect, 100),
	)
	var all, group statsResponse
	h.getJSON("/stats", http.StatusOK, &all)
	if all.OnlineClients != 2 || all.OpenChannels != 3 || all.KnownClients != 3 || all.EventsStored != 6 || all.Seq == 0 || all.EventsCountedAt.IsZero() {
		t.Fatalf("stats %+v", all)
	}
	h.getJSON("/stats?prefix="+url.QueryEscape("GID_s@@@"), http.StatusOK, &group)
	if group.Prefix != "GID_s@@@" || group.OnlineClients != 1 || group.OpenChannels != 2 || group.KnownClients != 2 || group.EventsStored != 5 {
		t.Fatalf("group stats %+v", group)
	}
	// The count is cached: a new event shows in the view at once, in the
	// count only after the TTL.
	h.apply(ev("other", "o2", presence.EventConnect, 100))
	h.getJSON("/stats", http.StatusOK, &all)
	if all.OpenChannels != 4 || all.EventsStored != 6 {
		t.Fatalf("stats after one more event %+v", all)
	}

	// Grouped by GroupId, largest first: "" (other, 2 channels) and GID_s
	// (one online client of two) have one online client each, so by name.
	h.apply(ev("GID_t@@@1", "t1", presence.EventConnect, 100), ev("GID_t@@@2", "t2", presence.EventConnect, 100))
	var byGroup groupStatsResponse
	h.getJSON("/stats?groupBy=group", http.StatusOK, &byGroup)
	want := []presence.GroupStats{{Group: "GID_t", OnlineClients: 2, OpenChannels: 2},
		{Group: "", OnlineClients: 1, OpenChannels: 2}, {Group: "GID_s", OnlineClients: 1, OpenChannels: 2}}
	if !slices.Equal(byGroup.Groups, want) || byGroup.TotalGroups != 3 || byGroup.Seq == 0 {
		t.Fatalf("by group %+v, want %+v", byGroup, want)
	}
	h.getJSON("/stats?groupBy=group&limit=1", http.StatusOK, &byGroup)
	if len(byGroup.Groups) != 1 || byGroup.Groups[0].Group != "GID_t" || byGroup.TotalGroups != 3 {
		t.Fatalf("by group, limit 1: %+v", byGroup)
	}
	h.expectProblem(http.MethodGet, "/stats?groupBy=node", "", http.StatusBadRequest, "groupBy")
}

// TestListClientsFilters: online clients filtered by the node, user name,
// address and connect time of their open channels.
func TestListClientsFilters(t *testing.T) {
	h := newHarness(t)
	on := func(client, channel, node string, at int64) presence.Event {
		e := ev(client, channel, presence.EventConnect, at)
		e.Node = node
		return e
	}
	from := func(e presence.Event, ip, user string) presence.Event {
		e.ClientIP, e.Username = ip, user
		return e
	}
	h.apply(from(on("f1", "c1", "n1", 1000), "10.1.2.3:50123", "alice"), from(on("f2", "c2", "n2", 2000), "10.2.0.1", "bob"),
		from(on("f3", "c3", "n1", 3000), "[2001:db8::7]:40112", "alice"),
		from(on("f4", "c4", "n2", 500), "10.1.9.9", "carol"), from(on("f4", "c5", "n1", 4000), "192.0.2.1", "bob"),
		from(ev("f5", "c6", presence.EventConnect, 2500), "10.1.0.5", "alice"), ev("f5", "c6", presence.EventTCPClean, 2600))
	ids := func(target string) string {
		var p page[presence.Status]
		h.getJSON(target, http.StatusOK, &p)
		var out []string
		for _, s := range p.Items {
			out = append(out, s.ClientID)
		}
		return strings.Join(out, ",")
	}
	for target, want := range map[string]string{
		"/clients?node=n1":                                               "f1,f3,f4",
		"/clients?node=n2":                                               "f2,f4",
		"/clients?connectedFrom=2000":                                    "f2,f3,f4",
		"/clients?connectedFrom=1000&connectedTo=3000":                   "f1,f2",
		"/clients?node=n2&connectedFrom=1000":                            "f2", // f4's n2 channel connected at 500
		"/clients?state=online&node=n1&connectedTo=1970-01-01T00:00:02Z": "f1",
		"/clients?username=alice":                                        "f1,f3", // f5's channel is closed
		"/clients?username=bob":                                          "f2,f4",
		"/clients?username=bob&node=n2":                                  "f2", // f4's bob channel is on n1
		"/clients?address=10.1.0.0/16":                                   "f1,f4",
		"/clients?address=10.1.0.0/16&username=carol":                    "f4",
		"/clients?address=10.1.0.0/16&node=n1":                           "f1", // f4's 10.1 channel is on n2
		"/clients?address=10.2.0.1":                                      "f2",
		"/clients?address=2001:db8::/32":                                 "f3",
		"/clients?address=0.0.0.0/0":                                     "f1,f2,f4",
		"/clients?username=nobody":                                       "",
	} {
		if got := ids(target); got != want {
			t.Errorf("%s: %q, want %q", target, got, want)
		}
	}
	h.expectProblem(http.MethodGet, "/clients?state=offline&node=n1", "", http.StatusBadRequest, "state")
	h.expectProblem(http.MethodGet, "/clients?connectedFrom=yesterday", "", http.StatusBadRequest, "connectedFrom")
	h.expectProblem(http.MethodGet, "/clients?address=10.1.0.0/33", "", http.StatusBadRequest, "address")
	h.expectProblem(http.MethodGet, "/clients?address=10.1", "", http.StatusBadRequest, "address")
	h.expectProblem(http.MethodGet, "/clients?state=all&username=alice", "", http.StatusBadRequest, "state")
}
