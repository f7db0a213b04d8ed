package presence

import (
	"slices"
	"testing"
)

func TestOnlineIntervals(t *testing.T) {
	spans := []ChannelSpan{
		{ConnectAt: 500, TCPCleanAt: 700}, // a takeover: overlaps the next
		{ConnectAt: 100, TCPCleanAt: 300}, // before the window partly
		{ConnectAt: 650, TCPCleanAt: 900}, // successor of the first
		{ConnectAt: 950, TCPCleanAt: 0},   // open
		{ConnectAt: 2000, TCPCleanAt: 0},  // after the window
		{ConnectAt: 10, TCPCleanAt: 50},   // before the window
		{ConnectAt: 400, TCPCleanAt: 400}, // empty
	}
	got, online := OnlineIntervals(spans, 200, 1000)
	want := []Interval{{From: 200, To: 300}, {From: 500, To: 900}, {From: 950, To: 1000, Ongoing: true}}
	if !slices.Equal(got, want) || online != 100+400+50 {
		t.Fatalf("intervals %+v online %d, want %+v and 550", got, online, want)
	}
	if got, online := OnlineIntervals(nil, 0, 10); len(got) != 0 || online != 0 {
		t.Fatalf("no channels: %+v %d", got, online)
	}
	// A channel closed exactly at the window's end ended inside it? No:
	// the window is [from, to), so it was online up to its end.
	if got, _ := OnlineIntervals([]ChannelSpan{{ConnectAt: 0, TCPCleanAt: 10}}, 0, 10); len(got) != 1 || !got[0].Ongoing {
		t.Fatalf("closed at the end: %+v", got)
	}
}
