package presence

import "slices"

// ChannelSpan is the connected period of one channel as the store holds
// it, in ms on the broker's clock: from its connect to its tcpclean, or
// open (TCPCleanAt 0) while it has none.
type ChannelSpan struct {
	ConnectAt  int64
	TCPCleanAt int64
}

// Interval is a period, within a window, during which a client was online:
// at least one of its channels was connected. Ongoing says it did not end
// inside the window (the client was still online at the window's end).
type Interval struct {
	From    int64 // ms
	To      int64 // ms
	Ongoing bool
}

// OnlineIntervals applies the rule over time: the client is online while
// any of its channels is (connect without tcpclean), so the spans are
// merged — overlapping ones, as a takeover's are, make one interval with
// no gap — and clipped to the window [from, to). It also returns the time
// online in the window, in ms.
func OnlineIntervals(spans []ChannelSpan, from, to int64) (intervals []Interval, onlineMs int64) {
	sorted := slices.Clone(spans)
	slices.SortFunc(sorted, func(a, b ChannelSpan) int { return cmpInt64(a.ConnectAt, b.ConnectAt) })
	for _, s := range sorted {
		end := s.TCPCleanAt
		if end == 0 || end > to {
			end = to // open, or closed after the window
		}
		start := max(s.ConnectAt, from)
		if start >= end {
			continue // outside the window
		}
		ongoing := s.TCPCleanAt == 0 || s.TCPCleanAt >= to
		if n := len(intervals); n > 0 && start <= intervals[n-1].To {
			last := &intervals[n-1]
			if end > last.To {
				last.To = end
			}
			last.Ongoing = last.Ongoing || ongoing
			continue
		}
		intervals = append(intervals, Interval{From: start, To: end, Ongoing: ongoing})
	}
	for _, iv := range intervals {
		onlineMs += iv.To - iv.From
	}
	return intervals, onlineMs
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
