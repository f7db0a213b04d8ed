package api

import (
	"net/http"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

// TestPresenceIntervalsAndOnlineAt: a client online from 10,100 to 10,200
// ms, then from 11,000 ms on two channels in turn (a takeover at 14,000–15,000:
// they overlap) and still online. The intervals merge the takeover, the
// uptime counts the window up to its end, and ?at= answers the past.
func TestPresenceIntervalsAndOnlineAt(t *testing.T) {
	h := newHarness(t)
	takeover := ev("cl", "ch1", presence.EventTCPClean, 15000)
	takeover.Reason, takeover.TakeoverBy = presence.ReasonTakeover, "ch2"
	h.apply(ev("cl", "ch0", presence.EventConnect, 10100), ev("cl", "ch0", presence.EventTCPClean, 10200),
		ev("cl", "ch1", presence.EventConnect, 11000), ev("cl", "ch2", presence.EventConnect, 14000), takeover)

	var p presenceResponse
	h.getJSON("/clients/cl/presence?from=10000&to=20000", http.StatusOK, &p)
	ms := func(tm time.Time) int64 { return presence.Millis(tm) }
	if len(p.Intervals) != 2 || ms(p.Intervals[0].From) != 10100 || ms(p.Intervals[0].To) != 10200 || p.Intervals[0].Ongoing ||
		ms(p.Intervals[1].From) != 11000 || ms(p.Intervals[1].To) != 20000 || !p.Intervals[1].Ongoing {
		t.Fatalf("intervals %+v", p.Intervals)
	}
	if p.OnlineMs != 9100 || p.Uptime != 0.91 || ms(p.From) != 10000 || ms(p.To) != 20000 {
		t.Fatalf("presence %+v, want 9,100 ms online of 10,000", p)
	}
	var none presenceResponse
	h.getJSON("/clients/nobody/presence?from=10000&to=20000", http.StatusOK, &none)
	if len(none.Intervals) != 0 || none.Uptime != 0 {
		t.Fatalf("unknown client: %+v", none)
	}

	for _, c := range []struct {
		at     string
		online bool
		open   int
	}{{"10150", true, 1}, {"10300", false, 0}, {"14500", true, 2}, {"1970-01-01T00:00:16Z", true, 1}, {"10050", false, 0}} {
		var a onlineAtResponse
		h.getJSON("/clients/cl/online?at="+c.at, http.StatusOK, &a)
		if a.Online != c.online || a.OpenChannels != c.open || a.ClientID != "cl" {
			t.Errorf("at %s: %+v, want online %v on %d channels", c.at, a, c.online, c.open)
		}
	}

	h.expectProblem(http.MethodGet, "/clients/cl/online?at=", "", http.StatusBadRequest, "at")
	h.expectProblem(http.MethodGet, "/clients/cl/online?at=2999-01-01T00:00:00Z", "", http.StatusBadRequest, "at")
	h.expectProblem(http.MethodGet, "/clients/cl/presence?from=15000&to=11000", "", http.StatusBadRequest, "to")
	h.expectProblem(http.MethodGet, "/clients/cl/presence?from=10000&to=2678410001", "", http.StatusBadRequest, "to")
}
