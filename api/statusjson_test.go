package api

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

func TestStatusJSONMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 11, 22, 5, 0, 0, 123_000_000, time.UTC)
	whole := time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)
	for _, st := range []presence.Status{
		{ClientID: "GID_x@@@dev-1", State: presence.StateOffline},
		{ClientID: "GID_x@@@dev-1", Online: true, State: presence.StateOnline, OpenChannels: 2, Since: &at, LastEventAt: &whole},
		{ClientID: `quote" back\ <tag> & ctrl` + "\x01\x1f\t\n\r", State: presence.StateUnknown, Node: "n-ü", LastEventAt: &at},
		{ClientID: "bad utf8 \xff\xfe and \u2028\u2029 and 日本", State: presence.StateOffline},
	} {
		want, _ := json.Marshal(st)
		if got := appendStatus(nil, st); string(got) != string(want) {
			t.Errorf("appendStatus\n got %s\nwant %s", got, want)
		}
	}
}
