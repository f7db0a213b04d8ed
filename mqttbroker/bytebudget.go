package mqttbroker

import "sync/atomic"

// byteBudget bounds bytes that peers make the broker hold, summed over all
// connections: large packets being read (Config.MaxInboundBytesTotal) and
// the wills of connected clients (Config.MaxWillBytesTotal).
type byteBudget struct {
	max  int64
	used atomic.Int64
}

// take reserves n bytes, or reports false and reserves nothing when they
// would pass max.
func (b *byteBudget) take(n int64) bool {
	if b.used.Add(n) > b.max {
		b.used.Add(-n)
		return false
	}
	return true
}

// give returns n bytes taken before.
func (b *byteBudget) give(n int64) {
	if n != 0 {
		b.used.Add(-n)
	}
}
