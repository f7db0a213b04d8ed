package outbox

import (
	"fmt"
	"os"
)

// Ack acknowledges every record up to and including upTo, which must have
// been returned by Read: the position is written to the checkpoint file
// (atomically, fsynced) before Ack returns, and segments holding only
// acknowledged records are deleted. Acknowledging an already acknowledged
// record is a no-op.
func (o *Outbox) Ack(upTo uint64) error {
	r := &o.reader
	r.mu.Lock()
	defer r.mu.Unlock()
	o.mu.Lock()
	acked, closed := o.acked, o.closed
	o.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if upTo <= acked {
		return nil
	}
	n := 0
	for n < len(r.inflight) && r.inflight[n].seq <= upTo {
		n++
	}
	if n == 0 || r.inflight[n-1].seq != upTo {
		return fmt.Errorf("ack outbox record %d: it has not been read (acknowledged up to %d)", upTo, acked)
	}
	// Persist first: deleting a segment, then crashing before the
	// checkpoint moved, is harmless (recovery skips to the oldest segment),
	// but the checkpoint must never promise what is not true yet.
	if err := writeCheckpoint(o.dir, o.dirFile, upTo); err != nil {
		return err
	}
	last := r.inflight[n-1]
	var ackedBytes int64
	for _, rec := range r.inflight[:n] {
		ackedBytes += rec.size
	}
	r.inflight = r.inflight[:copy(r.inflight, r.inflight[n:])]

	o.mu.Lock()
	o.acked = upTo
	o.ackPos = position{seq: upTo + 1, seg: last.seg, off: last.end}
	o.unacked -= ackedBytes
	var done []*segment
	for len(o.segments) > 1 && o.segments[1].base <= upTo+1 {
		done = append(done, o.segments[0])
		o.disk -= o.segments[0].size
		o.segments = o.segments[1:]
	}
	o.mu.Unlock()
	o.acks.Add(1)

	for _, seg := range done {
		if r.file != nil && r.fileSeg == seg.base {
			r.close()
		}
		// Not worth a directory fsync: a deletion lost in a crash is
		// redone by Open.
		if err := os.Remove(seg.path); err != nil {
			o.log.Warn("outbox: delete acknowledged segment", "file", seg.path, "err", err)
		}
	}
	return nil
}

// Rewind makes the next Read start again just after the last acknowledged
// record: records read but not acknowledged are read again. A forwarder
// that restarts within the process calls it so nothing read by its
// predecessor is skipped.
func (o *Outbox) Rewind() {
	r := &o.reader
	r.mu.Lock()
	defer r.mu.Unlock()
	o.mu.Lock()
	r.cur = o.ackPos
	o.mu.Unlock()
	r.inflight = r.inflight[:0]
}
