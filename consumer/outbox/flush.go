package outbox

import (
	"fmt"
	"os"

	"github.com/presenced/presenced/presence"
)

// flushLoop is the group committer: it writes the oldest waiting group
// with one write and one fdatasync, then releases its appenders. While it
// syncs, new appends gather in the next group, so the number of fsyncs
// adapts to the load: one per append when idle, one per many under load.
// It returns when the outbox is closed and every queued group is written.
func (o *Outbox) flushLoop() {
	defer close(o.flusherDone)
	for {
		o.mu.Lock()
		if len(o.groups) == 0 {
			closed := o.closed
			o.mu.Unlock()
			if closed {
				return
			}
			<-o.flushWake
			continue
		}
		g := o.groups[0]
		o.groups = o.groups[:copy(o.groups, o.groups[1:])]
		failed := o.failed
		o.mu.Unlock()

		if failed != nil {
			o.abandon(g, presence.Errorf(presence.EUNAVAILABLE, "event outbox unusable after a disk failure: %v", failed))
		} else {
			o.writeGroup(g)
		}
		close(g.done)
	}
}

// writeGroup appends g to the active segment, rolling to a new segment
// first when g would overflow it, and makes it durable.
func (o *Outbox) writeGroup(g *group) {
	size := int64(len(g.buf))
	if o.activeSize+size > o.segBytes && o.activeSize > int64(segmentHeaderBytes) {
		if err := o.roll(g.firstSeq); err != nil {
			o.log.Error("outbox: cannot start a new segment; events refused", "err", err)
			o.abandon(g, presence.Errorf(presence.EUNAVAILABLE, "event outbox cannot start a new segment: %v", err))
			return
		}
	}
	if _, err := o.active.WriteAt(g.buf, o.activeSize); err != nil {
		// Typically ENOSPC. Cut off whatever part was written so the
		// segment ends on a record boundary again, and carry on: the
		// next group may fit.
		if terr := o.active.Truncate(o.activeSize); terr != nil {
			o.fail(fmt.Errorf("write %s: %w; truncate after it: %w", o.active.Name(), err, terr))
		} else {
			o.log.Error("outbox: write failed; events refused", "file", o.active.Name(), "err", err, "records", g.count)
		}
		o.abandon(g, presence.Errorf(presence.EUNAVAILABLE, "event outbox write failed: %v", err))
		return
	}
	if err := syncFile(o.active); err != nil {
		// After a failed fsync the kernel may have dropped the dirty
		// pages and a retry can falsely succeed (the "fsyncgate" lesson),
		// so the outbox stops accepting; a restart recovers from disk.
		o.fail(err)
		o.abandon(g, presence.Errorf(presence.EUNAVAILABLE, "event outbox sync failed: %v", err))
		return
	}
	o.activeSize += size
	o.fsyncs.Add(1)
	o.appends.Add(g.count)
	o.appendBytes.Add(uint64(size))

	o.mu.Lock()
	o.segments[len(o.segments)-1].size = o.activeSize
	o.disk += size
	o.pending -= size
	o.unacked += size
	o.durable = g.firstSeq + g.count - 1
	o.wakeReaders()
	o.mu.Unlock()
	g.buf = nil
}

// roll makes a new, empty segment whose first record will be base the
// active one. The previous segment was fully synced by the group that
// last wrote to it, so only the last segment can ever have a torn tail.
func (o *Outbox) roll(base uint64) error {
	seg, f, err := createSegment(o.dir, o.dirFile, base)
	if err != nil {
		// Leave no half-made segment behind to collide with the retry.
		_ = os.Remove(segmentPath(o.dir, base))
		return err
	}
	if err := o.active.Close(); err != nil {
		o.log.Warn("outbox: close full segment", "file", o.active.Name(), "err", err)
	}
	o.active, o.activeSize = f, seg.size
	o.mu.Lock()
	o.segments = append(o.segments, seg)
	o.disk += seg.size
	o.mu.Unlock()
	return nil
}

// abandon fails g's appends. Its sequence numbers were never written, so
// the groups queued behind it move down to fill the gap: a record's
// sequence number is its position in the log.
func (o *Outbox) abandon(g *group, err error) {
	g.err = err
	o.mu.Lock()
	o.pending -= int64(len(g.buf))
	for _, later := range o.groups {
		later.firstSeq -= g.count
	}
	o.nextSeq -= g.count
	o.mu.Unlock()
	g.buf = nil
}

// fail makes the outbox refuse every later append.
func (o *Outbox) fail(err error) {
	o.log.Error("outbox: disk failure; refusing events until restart", "err", err)
	o.mu.Lock()
	if o.failed == nil {
		o.failed = err
	}
	o.mu.Unlock()
}

// wakeReaders wakes a Read waiting for records. o.mu must be held.
func (o *Outbox) wakeReaders() {
	if !o.closed {
		close(o.readable)
		o.readable = make(chan struct{})
	}
}
