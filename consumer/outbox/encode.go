package outbox

import (
	"sync"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/durable"
)

// recordBuffers hold an event's framed record while it is encoded and
// checksummed, outside the outbox's lock, until it is copied into its
// group. Events are a few hundred bytes; a buffer grown past
// maxPooledRecord by an unusual one is not kept.
var recordBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

const maxPooledRecord = 4 << 10

// frameEvent returns ev framed as a KindEvent record in a pooled buffer;
// give it back with releaseRecord.
func frameEvent(ev *presence.Event) *[]byte {
	p := recordBuffers.Get().(*[]byte)
	buf, start := durable.BeginFrame((*p)[:0])
	buf = append(buf, byte(KindEvent))
	buf = presence.AppendEventJSON(buf, ev)
	*p = durable.EndFrame(buf, start)
	return p
}

func releaseRecord(p *[]byte) {
	if cap(*p) <= maxPooledRecord {
		recordBuffers.Put(p)
	}
}
