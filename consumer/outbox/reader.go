package outbox

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
)

// readChunkBytes is how much of a segment one Read reads at most (unless a
// single record is bigger).
const readChunkBytes = 256 << 10

// reader is the consuming side's state, guarded by its own mutex so a slow
// disk read never blocks Append (which takes only Outbox.mu).
type reader struct {
	mu       sync.Mutex
	cur      position // the next record to read
	file     *os.File // open segment cur.seg, or nil
	fileSeg  uint64
	inflight []readRecord // read, not yet acknowledged, in order
	buf      []byte
	err      error // sticky: a corrupt record stops reading
}

// readRecord remembers where a record read but not acknowledged ends, so
// Ack can move the checkpoint position and the byte gauge exactly.
type readRecord struct {
	seq  uint64
	seg  uint64
	end  int64
	size int64
}

// Read returns up to max durable records after the last one read, oldest
// first, waiting until at least one exists or ctx ends. The first Read
// after Open (or after Rewind) starts just after the last acknowledged
// record. It returns ErrClosed after Close and a *CorruptError when a
// record is damaged (reading cannot continue past it). Records already
// waiting are returned even when ctx is done; ctx.Err() is returned only
// when none are, so Read with a cancelled context polls.
func (o *Outbox) Read(ctx context.Context, max int) ([]Record, error) {
	for {
		recs, wait, err := o.readAvailable(max)
		if err != nil || len(recs) > 0 {
			return recs, err
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// ReadNow is Read without waiting: it returns no records when none are
// waiting to be read.
func (o *Outbox) ReadNow(max int) ([]Record, error) {
	recs, _, err := o.readAvailable(max)
	return recs, err
}

// readAvailable reads what is durable now; when nothing is, it returns a
// channel that is closed when that may have changed.
func (o *Outbox) readAvailable(max int) ([]Record, <-chan struct{}, error) {
	if max <= 0 {
		max = 1
	}
	r := &o.reader
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return nil, nil, r.err
	}

	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil, nil, ErrClosed
	}
	if r.cur.seq > o.durable {
		wait := o.readable
		o.mu.Unlock()
		return nil, wait, nil
	}
	seg, err := o.segmentAt(r.cur)
	if err != nil {
		o.mu.Unlock()
		r.err = err
		return nil, nil, err
	}
	if seg.base != r.cur.seg {
		r.cur.seg, r.cur.off = seg.base, int64(segmentHeaderBytes)
	}
	limit, path := seg.size, seg.path
	o.mu.Unlock()

	recs, err := r.readSegment(path, limit, max)
	if err != nil {
		r.err = err
	}
	return recs, nil, err
}

// segmentAt returns the segment holding the record at p, moving past
// segments p is at the end of. o.mu must be held and p.seq must be durable.
func (o *Outbox) segmentAt(p position) (*segment, error) {
	i := slices.IndexFunc(o.segments, func(s *segment) bool { return s.base == p.seg })
	if i < 0 {
		// p's segment was deleted once fully acknowledged, while p
		// was at its end: the record is the first of a later segment.
		i = slices.IndexFunc(o.segments, func(s *segment) bool { return s.base == p.seq })
		if i < 0 {
			return nil, fmt.Errorf("read outbox: no segment holds record %d", p.seq)
		}
		return o.segments[i], nil
	}
	if p.off < o.segments[i].size {
		return o.segments[i], nil
	}
	for i++; i < len(o.segments); i++ {
		if o.segments[i].size > int64(segmentHeaderBytes) {
			if o.segments[i].base != p.seq {
				return nil, fmt.Errorf("read outbox: segment %s starts at record %d, want %d", o.segments[i].path, o.segments[i].base, p.seq)
			}
			return o.segments[i], nil
		}
	}
	return nil, fmt.Errorf("read outbox: record %d is durable but no segment holds it", p.seq)
}

// readSegment reads up to max records of segment path from r.cur, not
// beyond limit (its durable size, which falls on a record boundary).
func (r *reader) readSegment(path string, limit int64, max int) ([]Record, error) {
	if err := r.open(path); err != nil {
		return nil, err
	}
	want := min(limit-r.cur.off, readChunkBytes)
	for {
		if int64(cap(r.buf)) < want {
			r.buf = make([]byte, want)
		}
		buf := r.buf[:want]
		if _, err := r.file.ReadAt(buf, r.cur.off); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read outbox segment %s: %w", path, err)
		} else if err != nil {
			return nil, &CorruptError{File: path, Offset: r.cur.off, Reason: "segment is shorter than its synced size"}
		}
		var recs []Record
		var sizes []int64
		var payloadBytes int
		pos := 0
		for len(recs) < max && pos < len(buf) {
			res, kind, payload, size, why := parseRecord(buf[pos:])
			if res == parsedShort && r.cur.off+int64(len(buf)) < limit {
				break // the rest is beyond this chunk
			}
			if res != parsedRecord {
				return nil, &CorruptError{File: path, Offset: r.cur.off + int64(pos), Reason: why}
			}
			recs = append(recs, Record{Seq: r.cur.seq + uint64(len(recs)), Kind: kind, Payload: payload})
			sizes = append(sizes, int64(size))
			payloadBytes += len(payload)
			pos += size
		}
		if len(recs) == 0 {
			// One record is bigger than the chunk: read exactly it.
			res, _, _, _, _ := parseRecord(buf)
			if res != parsedShort || len(buf) < recordHeaderBytes {
				return nil, &CorruptError{File: path, Offset: r.cur.off, Reason: "record cannot be read"}
			}
			want = min(limit-r.cur.off, int64(recordHeaderBytes)+int64(binary.LittleEndian.Uint32(buf)))
			continue
		}
		// Copy the payloads out of the reused buffer in one allocation.
		owned := make([]byte, 0, payloadBytes)
		off := r.cur.off
		for i := range recs {
			start := len(owned)
			owned = append(owned, recs[i].Payload...)
			recs[i].Payload = owned[start:len(owned):len(owned)]
			off += sizes[i]
			r.inflight = append(r.inflight, readRecord{seq: recs[i].Seq, seg: r.cur.seg, end: off, size: sizes[i]})
		}
		r.cur.seq += uint64(len(recs))
		r.cur.off = off
		return recs, nil
	}
}

// open makes r.file the segment at path (r.cur.seg), checking its header.
func (r *reader) open(path string) error {
	if r.file != nil && r.fileSeg == r.cur.seg {
		return nil
	}
	r.close()
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read outbox: %w", err)
	}
	header := make([]byte, segmentHeaderBytes)
	if _, err := f.ReadAt(header, 0); err != nil || !bytes.Equal(header, []byte(segmentHeader)) {
		f.Close()
		return &CorruptError{File: path, Offset: 0, Reason: fmt.Sprintf("segment header is %q, want %q", header, segmentHeader)}
	}
	r.file, r.fileSeg = f, r.cur.seg
	return nil
}

func (r *reader) close() {
	if r.file != nil {
		r.file.Close()
		r.file = nil
	}
}
