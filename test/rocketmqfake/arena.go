package rocketmqfake

import "unsafe"

const (
	// recordChunk is the size of the blocks wire records are carved from.
	recordChunk = 1 << 20
	// maxChunkedRecord is the largest record carved from a chunk; larger
	// ones get their own allocation rather than waste a chunk's tail.
	maxChunkedRecord = recordChunk / 16
)

// recordArena hands out the memory of wire records. The store keeps every
// record as long as its message, so allocating each one separately costs a
// malloc, zeroing and heap growth per message; carving them out of 1 MiB
// chunks costs that per chunk. A chunk lives as long as any of its records
// (messages are only dropped with their topic, so little is held up).
// Guarded by Fake.mu.
type recordArena struct {
	chunk []byte // the current chunk; len is the part handed out
}

// alloc returns an empty slice with room for exactly n bytes. Its capacity
// is capped (three-index slice), so appending more than n reallocates
// instead of running into the next record.
func (a *recordArena) alloc(n int) []byte {
	if n > maxChunkedRecord {
		return make([]byte, 0, n)
	}
	if cap(a.chunk)-len(a.chunk) < n {
		a.chunk = make([]byte, 0, recordChunk)
	}
	start := len(a.chunk)
	a.chunk = a.chunk[:start+n]
	return a.chunk[start : start : start+n]
}

// viewString returns b's bytes as a string without copying them. Only for
// bytes nobody writes again: request frames (readCommand allocates each
// one) and stored wire records.
func viewString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}
