package outbox

import (
	"fmt"
	"os"
	"path/filepath"
)

// position is a place between two records.
type position struct {
	seq uint64 // sequence number of the record that starts here
	seg uint64 // base of the segment holding it
	off int64  // byte offset in that segment
}

// recover brings the directory into a consistent state and sets up the
// in-memory view of it. It runs before the flusher starts, so it owns
// everything.
func (o *Outbox) recover() error {
	// A temporary checkpoint is from a write a crash interrupted; the
	// real one is intact.
	_ = os.Remove(filepath.Join(o.dir, checkpointTmpName))
	acked, hadCheckpoint, err := readCheckpoint(o.dir)
	if err != nil {
		// Forwarding everything again is safe (the store absorbs
		// duplicates); refusing to start the broker is not.
		o.log.Warn("outbox checkpoint unreadable; records still on disk will be forwarded again", "err", err)
		acked, hadCheckpoint = 0, false
	}
	segs, err := listSegments(o.dir)
	if err != nil {
		return err
	}
	if len(segs) == 0 {
		seg, f, err := createSegment(o.dir, o.dirFile, acked+1)
		if err != nil {
			return fmt.Errorf("open outbox: %w", err)
		}
		o.segments = []*segment{seg}
		o.active, o.activeSize = f, seg.size
		o.disk = seg.size
		o.acked, o.durable, o.nextSeq = acked, acked, acked+1
		o.ackPos = position{seq: acked + 1, seg: seg.base, off: seg.size}
		o.reader.cur = o.ackPos
		return nil
	}

	// Segments wholly acknowledged whose deletion a crash interrupted.
	for len(segs) > 1 && segs[1].base <= acked+1 {
		if err := os.Remove(segs[0].path); err != nil {
			return fmt.Errorf("open outbox: delete acknowledged segment: %w", err)
		}
		segs = segs[1:]
	}
	if first := segs[0].base; first > acked+1 {
		// Records before the first segment are gone; they were deleted
		// because they had been acknowledged.
		if hadCheckpoint {
			o.log.Warn("outbox checkpoint is behind the oldest segment; resuming at the segment", "checkpoint", acked, "segment", segs[0].path)
		}
		acked = first - 1
	}
	for _, seg := range segs[:len(segs)-1] {
		info, err := os.Stat(seg.path)
		if err != nil {
			return fmt.Errorf("open outbox: %w", err)
		}
		seg.size = info.Size()
	}

	last := segs[len(segs)-1]
	records, err := o.recoverLast(last)
	if err != nil {
		return err
	}
	durable := last.base + records - 1
	if acked > durable {
		o.log.Warn("outbox checkpoint is ahead of the records on disk; nothing is left to forward", "checkpoint", acked, "newest", durable)
		acked = durable
	}
	ackPos, err := findPosition(segs[0], acked+1)
	if err != nil {
		return err
	}

	o.segments = segs
	for _, seg := range segs {
		o.disk += seg.size
		o.unacked += seg.size - int64(segmentHeaderBytes)
	}
	o.unacked -= ackPos.off - int64(segmentHeaderBytes)
	o.acked, o.durable, o.nextSeq = acked, durable, durable+1
	o.ackPos = ackPos
	o.reader.cur = ackPos
	if o.durable > o.acked {
		o.log.Info("outbox resumes with a backlog", "records", o.durable-o.acked, "bytes", o.unacked, "segments", len(segs))
	}
	return nil
}

// recoverLast validates the last segment, truncates a torn tail, opens it
// for appending, and returns how many records it holds.
func (o *Outbox) recoverLast(last *segment) (uint64, error) {
	f, err := os.OpenFile(last.path, os.O_RDWR, 0)
	if err != nil {
		return 0, fmt.Errorf("open outbox: %w", err)
	}
	res, err := scanSegment(f, last.path, int64(segmentHeaderBytes), nil)
	if err != nil {
		f.Close()
		return 0, fmt.Errorf("open outbox: %w", err)
	}
	if res.badReason != "" {
		torn := res.fileSize - res.end
		// Only the last group write can be torn by a crash; more invalid
		// bytes than that are damage we must not paper over.
		if torn > maxGroupBytes {
			f.Close()
			return 0, &CorruptError{File: last.path, Offset: res.end, Reason: fmt.Sprintf("%s, and %d bytes follow (more than one write)", res.badReason, torn)}
		}
		if err := truncateTail(f, res.end); err != nil {
			f.Close()
			return 0, fmt.Errorf("open outbox: truncate torn tail of %s: %w", last.path, err)
		}
		o.log.Warn("outbox: truncated a torn write left by a crash",
			"file", last.path, "offset", max(res.end, int64(segmentHeaderBytes)), "bytes", torn, "reason", res.badReason)
		res.end = max(res.end, int64(segmentHeaderBytes))
	}
	last.size = res.end
	o.active, o.activeSize = f, res.end
	return res.records, nil
}

// truncateTail cuts f at end (rewriting the header if even that was torn)
// and makes the cut durable.
func truncateTail(f *os.File, end int64) error {
	if err := f.Truncate(end); err != nil {
		return err
	}
	if end < int64(segmentHeaderBytes) {
		if _, err := f.WriteAt([]byte(segmentHeader), 0); err != nil {
			return err
		}
	}
	return f.Sync()
}

// findPosition returns the position of record seq in seg, which must hold
// it or end just before it.
func findPosition(seg *segment, seq uint64) (position, error) {
	pos := position{seq: seq, seg: seg.base, off: int64(segmentHeaderBytes)}
	skip := seq - seg.base
	if skip == 0 {
		return pos, nil
	}
	f, err := os.Open(seg.path)
	if err != nil {
		return pos, fmt.Errorf("open outbox: %w", err)
	}
	defer f.Close()
	var seen uint64
	res, err := scanSegment(f, seg.path, pos.off, func(_ Kind, end int64) bool {
		seen++
		pos.off = end
		return seen < skip
	})
	if err != nil {
		return pos, fmt.Errorf("open outbox: %w", err)
	}
	if seen < skip {
		if res.badReason != "" {
			return pos, &CorruptError{File: seg.path, Offset: res.end, Reason: res.badReason}
		}
		return pos, fmt.Errorf("open outbox: segment %s holds %d records, but the checkpoint says %d of them were acknowledged", seg.path, seen, skip)
	}
	return pos, nil
}
