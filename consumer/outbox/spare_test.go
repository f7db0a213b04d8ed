package outbox

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/presenced/presenced/presence"
)

// A written group's buffer is reused by a later group (Outbox.spare):
// records of every size, in groups large and small, must still read back
// exactly, from disk after a reopen.
func TestReusedGroupBuffersKeepRecordsIntact(t *testing.T) {
	dir := t.TempDir()
	o := openOutbox(t, dir, Options{})
	event := func(i int) presence.Event {
		ev := testEvent(presence.EventConnect, i)
		ev.ClientID = strings.Repeat("x", 1+(97*i)%128) // sizes that rise and fall
		ev.Username = strings.Repeat("u", (53*i)%256)
		return ev
	}
	var want []string
	appendOne := func(i int) {
		if err := o.Append(context.Background(), event(i)); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
	// Bursts (large groups) between runs of lone appends (one-record
	// groups), so that buffers of every size are handed on.
	i := 0
	for range 3 {
		var wg sync.WaitGroup
		for range 64 {
			n := i
			i++
			wg.Go(func() { appendOne(n) })
		}
		wg.Wait()
		for range 20 {
			appendOne(i)
			i++
		}
	}
	for n := range i {
		want = append(want, event(n).ClientID)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}

	o = openOutbox(t, dir, Options{})
	got := make(map[string]int) // bursts append in any order: compare counts by id and channel
	for _, rec := range readAll(t, o, i, 100) {
		ev, err := rec.Event()
		if err != nil {
			t.Fatalf("record %d: %v", rec.Seq, err)
		}
		got[ev.ChannelID+" "+ev.ClientID]++
	}
	for n := range i {
		key := event(n).ChannelID + " " + want[n]
		if got[key] != 1 {
			t.Fatalf("event %d (%d-byte client id) read back %d times", n, len(want[n]), got[key])
		}
	}
}
