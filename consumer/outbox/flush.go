package outbox

import (
	"fmt"
	"os"
	"time"

	"github.com/presenced/presenced/presence"
)

// Retry pacing for a group that could not be written (the disk is full):
// often enough that tcpclean events go through soon after space returns,
// rarely enough that a full disk costs nothing.
const (
	retryMin = 10 * time.Millisecond
	retryMax = time.Second
)

// flushLoop is the group committer: it writes the oldest waiting group
// with one write and one fdatasync, then releases its appenders. While it
// syncs, new appends gather in the next group, so the number of fsyncs
// adapts to the load: one per append when idle, one per many under load.
// It returns when the outbox is closed and every queued group is written
// or, once Close stops waiting, given up.
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

		switch {
		case failed != nil:
			o.abandon(g, presence.Errorf(presence.EUNAVAILABLE, "event outbox unusable after a disk failure: %v", failed))
		case o.giveUp.Err() != nil:
			o.abandon(g, errGivenUp)
		default:
			o.writeGroup(g)
			o.ballast.ensure(time.Now())
		}
	}
}

// writeGroup makes g durable and settles its appenders. When the disk
// refuses the write, g's refusable records are refused and the rest are
// tried again until they are written, the disk fails for good, or Close
// gives up.
func (o *Outbox) writeGroup(g *group) {
	backoff := presence.Backoff{Min: retryMin, Max: retryMax}
	for {
		retry, err := o.writeOnce(g)
		switch {
		case err == nil:
			o.wrote(g)
			return
		case !retry:
			o.abandon(g, err)
			return
		}
		if g = o.refuseForRetry(g, err); g == nil {
			return // nothing was left to write
		}
		if noSpace(err) && o.ballast.release() == nil {
			continue // write again at once, into the space just freed
		}
		if backoff.Wait(o.giveUp) != nil {
			o.log.Error("outbox: closing with the disk still refusing writes; disconnect/tcpclean events are lost",
				"events", g.count, "err", err)
			o.abandon(g, errGivenUp)
			return
		}
	}
}

// writeOnce appends g to the active segment, rolling to a new segment
// first when g would overflow it, and syncs it. On failure the active
// segment is as it was before, and retry says whether trying again is
// safe; when it is not, the outbox has been failed.
func (o *Outbox) writeOnce(g *group) (retry bool, err error) {
	size := int64(len(g.buf))
	if o.activeSize+size > o.segBytes && o.activeSize > int64(segmentHeaderBytes) {
		if err := o.roll(g.firstSeq); err != nil {
			// Nothing was written to the active segment, and roll
			// removed its half-made file: a retry starts clean.
			return true, fmt.Errorf("start a new segment: %w", err)
		}
	}
	if _, err = o.active.WriteAt(g.buf, o.activeSize); err == nil {
		if err = o.sync(o.active); err == nil {
			return false, nil
		}
		if !noSpace(err) {
			// After a failed fsync the kernel may have dropped the dirty
			// pages and a retry can falsely succeed (the "fsyncgate"
			// lesson), so the outbox stops accepting; a restart recovers
			// from disk.
			o.fail(err)
			return false, presence.Errorf(presence.EUNAVAILABLE, "event outbox sync failed: %v", err)
		}
		// ENOSPC at writeback: the failed pages are g's alone; cut them
		// off below and write g again later (see the package doc).
	}
	// Cut off whatever part was written so the segment ends on a record
	// boundary again, and make the cut durable before any refused
	// record's appender hears of it: a refused connect must not reappear
	// after a crash. Always, whatever count the write returned: Linux
	// 6.18's tmpfs returns ENOSPC with nothing written reported, yet
	// leaves the file extended with the bytes that fit.
	if terr := o.cutBack(); terr != nil {
		err = fmt.Errorf("%w; cut back to %d bytes after it: %w", err, o.activeSize, terr)
		o.fail(err)
		return false, presence.Errorf(presence.EUNAVAILABLE, "event outbox write failed: %v", err)
	}
	return true, err
}

// cutBack truncates the active segment to its durable size and syncs that.
func (o *Outbox) cutBack() error {
	if err := o.active.Truncate(o.activeSize); err != nil {
		return err
	}
	return o.sync(o.active)
}

// refuseForRetry handles a write of g that failed with err and may be
// retried: it refuses the refusable records of g and of every group queued
// behind it (they would meet the same disk), and, while disconnect or
// tcpclean records are left to retry, refuses new connect and node events.
// It returns the group to retry in g's place, or nil when none is left.
func (o *Outbox) refuseForRetry(g *group, err error) *group {
	full := noSpace(err)
	refusal := presence.Errorf(presence.EUNAVAILABLE, "event outbox cannot write; events refused until it can")
	if full {
		refusal = presence.Errorf(presence.EOVERLOADED, "disk full: the event outbox cannot write; new connections refused until space is freed")
	}
	if !o.writeFailing { // once per run of failures, not per group
		o.writeFailing = true
		o.log.Error("outbox: write failed; connect events refused, disconnect/tcpclean events kept and retried",
			"file", o.active.Name(), "err", err, "records", g.count)
	}
	if o.guard != nil {
		o.guard.refreshNow()
	}
	// shift is how many records were refused before the group at hand:
	// a record's sequence number is its position in the log, so the
	// records behind refused ones move down to fill their places.
	var shift uint64
	refuse := func(g *group) *group {
		if full { // counted before the appenders hear of it
			o.lowDiskRefused.Add(g.refusable)
		}
		g.firstSeq -= shift
		count, size := g.count, len(g.buf)
		kept := g.refuseRefusable(refusal)
		shift += count - kept.count
		o.pending -= int64(size - len(kept.buf))
		return kept
	}

	o.mu.Lock()
	defer o.mu.Unlock()
	g = refuse(g)
	queued := o.groups[:0]
	for _, later := range o.groups {
		if later = refuse(later); later.count > 0 {
			queued = append(queued, later)
		}
	}
	clear(o.groups[len(queued):])
	o.groups = queued
	o.nextSeq -= shift
	if g.count == 0 {
		o.retrying = nil
		return nil
	}
	o.retrying = refusal
	return g
}

// maxSpareBytes bounds the buffer kept for reuse (Outbox.spare): the
// buffer of a burst's large group is let go rather than held for good.
const maxSpareBytes = 256 << 10

// wrote accounts for g, now durable, and releases its appenders.
func (o *Outbox) wrote(g *group) {
	size := int64(len(g.buf))
	o.activeSize += size
	o.fsyncs.Add(1)
	o.appends.Add(g.count)
	o.appendBytes.Add(uint64(size))
	if o.writeFailing {
		o.writeFailing = false
		o.log.Info("outbox: writing again after failures; connect events accepted")
	}

	o.mu.Lock()
	o.segments[len(o.segments)-1].size = o.activeSize
	o.disk += size
	o.pending -= size
	o.unacked += size
	o.durable = g.firstSeq + g.count - 1
	o.retrying = nil
	if cap(g.buf) <= maxSpareBytes {
		o.spare = g.buf[:0] // nobody reads g.buf once it is written
	}
	o.wakeReaders()
	o.mu.Unlock()
	g.finish(nil)
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
// sequence number is its position in the log. Its disconnect and tcpclean
// records were accepted, so they count as lost.
func (o *Outbox) abandon(g *group, err error) {
	o.mu.Lock()
	o.pending -= int64(len(g.buf))
	for _, later := range o.groups {
		later.firstSeq -= g.count
	}
	o.nextSeq -= g.count
	o.retrying = nil // g was the group being retried, if any
	o.mu.Unlock()
	o.lost.Add(g.count - g.refusable)
	g.finish(err)
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
