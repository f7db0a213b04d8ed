// Package outbox is the broker's local durable outbox: every lifecycle
// event is appended to it, and made durable, before the broker acts on it
// (a CONNACK is sent only once the connect event is on disk); a forwarder
// reads it in order, hands the events to RocketMQ and acknowledges them.
// While RocketMQ is unreachable the outbox grows, and it drains when
// RocketMQ returns; after a restart reading resumes at the first record not
// acknowledged.
//
// # Layout
//
// The outbox is a directory of append-only segment files named by the
// sequence number of their first record (00000000000000000001.seg, …), a
// checkpoint file with the last acknowledged sequence number, and a LOCK
// file. Records are length-prefixed and CRC-32C checked (see record.go); a
// kind byte in front of the JSON lets lifecycle and node events share one
// ordered log. Segments wholly acknowledged are deleted.
//
// # Durability
//
// Appends are group-committed: concurrent Append calls are written together
// and covered by one fdatasync, and each returns only when its record is
// durable. Readers never see a record before it is durable, so nothing is
// forwarded that a crash could take back.
//
// # Recovery
//
// A crash can tear only the last group write, at the end of the last
// segment. On Open, invalid bytes there that fit within one group write are
// truncated and logged. Invalid bytes anywhere else cannot come from a crash
// of this code: Open or Read stops with a *CorruptError naming the file and
// offset, for an operator to decide.
//
// # When full
//
// The outbox is bounded by Options.MaxBytes of segment files. When they
// reach it, connect events (and node events) are refused with a
// presence.EOVERLOADED error, which makes the broker refuse the CONNECT with
// CONNACK 0x03 — no client is admitted whose presence could not be
// recorded. disconnect and tcpclean events are always accepted, even beyond
// the limit: refusing them would leave admitted clients online forever in
// the store, and their number is bounded by the clients already connected
// (each admitted connect brings at most two more events), so the overshoot
// is bounded too.
package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"

	"github.com/presenced/presenced/presence"
)

// Defaults of Options.
const (
	DefaultMaxBytes     = 1 << 30
	DefaultSegmentBytes = 64 << 20
	// maxGroupBytes bounds one group commit. It is also how much of the end
	// of the last segment recovery may treat as a torn write: anything
	// longer that is invalid is corruption.
	maxGroupBytes = 4 << 20
)

// ErrClosed is returned by Append and Read after Close.
var ErrClosed = errors.New("outbox closed")

// Options configure an Outbox. The zero value is usable.
type Options struct {
	// MaxBytes bounds the segment files on disk; see the package doc for
	// what happens when they reach it. Default DefaultMaxBytes.
	MaxBytes int64
	// SegmentBytes is the size at which a new segment is started. Space is
	// reclaimed a whole segment at a time, so it is capped at MaxBytes/8.
	// Default DefaultSegmentBytes.
	SegmentBytes int64
	// Log receives recovery notices and write failures. Default slog.Default().
	Log *slog.Logger
}

// Stats are the outbox's gauges and counters, for metrics.
type Stats struct {
	BacklogRecords uint64 // durable records not yet acknowledged
	BacklogBytes   int64  // their size on disk, framing included
	DiskBytes      int64  // size of all segment files (what MaxBytes bounds)
	Segments       int
	DurableSeq     uint64 // sequence number of the newest durable record
	AckedSeq       uint64 // sequence number of the newest acknowledged record

	Appends     uint64 // records made durable since Open
	AppendBytes uint64 // their bytes, framing included
	Fsyncs      uint64 // group commits (each one fdatasync)
	Refused     uint64 // connect and node events refused because the outbox was full
	Acks        uint64 // Ack calls that moved the checkpoint
}

// Outbox is a durable, bounded, append-only log of events. Append is safe
// for concurrent use; Read, Ack and Rewind are meant for one consumer (they
// are safe to call concurrently, but two readers would split the records
// between them).
type Outbox struct {
	dir      string
	maxBytes int64
	segBytes int64
	log      *slog.Logger
	dirFile  *os.File // the directory, for fsyncs of renames and new files
	lockFile *os.File

	flushWake   chan struct{} // cap 1: tells the flusher a group is waiting
	flusherDone chan struct{}

	// Owned by the flusher goroutine.
	active     *os.File
	activeSize int64 // bytes written to active, durable or not

	ackMu sync.Mutex // serializes checkpoint writes

	reader reader // reading state; see reader.go

	mu       sync.Mutex
	closed   bool
	failed   error    // sticky: the disk lost writes we cannot account for
	groups   []*group // waiting to be written, oldest first
	nextSeq  uint64   // sequence number of the next Append
	pending  int64    // bytes in groups
	segments []*segment
	disk     int64 // sum of segments' durable sizes
	durable  uint64
	acked    uint64
	ackPos   position // just past the acknowledged record
	unacked  int64    // bytes of durable records not acknowledged
	// readable is closed and replaced whenever durable advances or the
	// outbox closes, to wake a waiting Read.
	readable chan struct{}

	appends, appendBytes, fsyncs, refused, acks atomic.Uint64
}

// group is one group commit: the records appended while the previous group
// was being written.
type group struct {
	buf      []byte
	firstSeq uint64
	count    uint64
	done     chan struct{} // closed when written and synced, or failed
	err      error
}

// Open opens (creating if needed) the outbox in dir and recovers it: a torn
// tail is truncated, fully acknowledged segments are deleted, and reading
// resumes just after the last acknowledged record. Close it when done.
func Open(dir string, opts Options) (*Outbox, error) {
	o := &Outbox{
		dir:         dir,
		maxBytes:    opts.MaxBytes,
		segBytes:    opts.SegmentBytes,
		log:         opts.Log,
		flushWake:   make(chan struct{}, 1),
		flusherDone: make(chan struct{}),
		readable:    make(chan struct{}),
	}
	if o.maxBytes <= 0 {
		o.maxBytes = DefaultMaxBytes
	}
	if o.segBytes <= 0 {
		o.segBytes = DefaultSegmentBytes
	}
	o.segBytes = max(min(o.segBytes, o.maxBytes/8), 1024)
	if o.log == nil {
		o.log = slog.Default()
	}
	o.log = o.log.With("outbox", dir)

	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	o.lockFile = lock
	if o.dirFile, err = os.Open(dir); err != nil {
		lock.Close()
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	if err := o.recover(); err != nil {
		o.closeFiles()
		return nil, err
	}
	go o.flushLoop()
	return o, nil
}

// Append makes ev durable and returns nil, or returns why it could not:
// a presence.EOVERLOADED error for a connect event when the outbox is full,
// ErrClosed after Close, a presence.EUNAVAILABLE error when the disk fails.
//
// ctx is only checked before the event is queued: once queued it will be
// written, so Append waits for the fsync rather than report a failure for
// an event that then appears anyway (a connect the broker refused must
// never be recorded). The wait is one group commit.
func (o *Outbox) Append(ctx context.Context, ev presence.Event) error {
	payload, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("append event: %w", err)
	}
	mustAccept := ev.Type == presence.EventDisconnect || ev.Type == presence.EventTCPClean
	return o.append(ctx, KindEvent, payload, mustAccept)
}

// AppendNode makes a node event durable. Like connect events, node events
// are refused when the outbox is full: a heartbeat that cannot be recorded
// is harmless, since the consumer could not see it in time anyway.
func (o *Outbox) AppendNode(ctx context.Context, ev presence.NodeEvent) error {
	payload, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("append node event: %w", err)
	}
	return o.append(ctx, KindNode, payload, false)
}

func (o *Outbox) append(ctx context.Context, kind Kind, payload []byte, mustAccept bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if 1+len(payload) > maxBodyBytes {
		return presence.Errorf(presence.EINVALID, "outbox record of %d bytes is larger than %d", 1+len(payload), maxBodyBytes)
	}
	size := int64(recordHeaderBytes + 1 + len(payload))

	o.mu.Lock()
	switch {
	case o.closed:
		o.mu.Unlock()
		return ErrClosed
	case o.failed != nil:
		err := o.failed
		o.mu.Unlock()
		return presence.Errorf(presence.EUNAVAILABLE, "event outbox unusable after a disk failure: %v", err)
	case !mustAccept && o.disk+o.pending+size > o.maxBytes:
		disk := o.disk + o.pending
		o.mu.Unlock()
		o.refused.Add(1)
		return presence.Errorf(presence.EOVERLOADED, "event outbox full (%d of %d bytes waiting to be forwarded)", disk, o.maxBytes)
	}
	var g *group
	if n := len(o.groups); n > 0 && int64(len(o.groups[n-1].buf))+size <= maxGroupBytes {
		g = o.groups[n-1]
	} else {
		g = &group{firstSeq: o.nextSeq, done: make(chan struct{})}
		o.groups = append(o.groups, g)
	}
	g.buf = appendRecord(g.buf, kind, payload)
	g.count++
	o.nextSeq++
	o.pending += size
	o.mu.Unlock()

	select {
	case o.flushWake <- struct{}{}:
	default: // the flusher is already told
	}
	<-g.done
	return g.err
}

// Close stops accepting appends, writes what was queued, wakes a waiting
// Read with ErrClosed, and closes the files. Acknowledged positions are
// already durable (Ack writes them), so nothing else needs saving.
func (o *Outbox) Close() error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil
	}
	o.closed = true
	close(o.readable)
	o.mu.Unlock()
	select {
	case o.flushWake <- struct{}{}:
	default:
	}
	<-o.flusherDone
	o.reader.close()
	return o.closeFiles()
}

func (o *Outbox) closeFiles() error {
	var errs []error
	if o.active != nil {
		errs = append(errs, o.active.Close())
	}
	if o.dirFile != nil {
		errs = append(errs, o.dirFile.Close())
	}
	errs = append(errs, o.lockFile.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close outbox: %w", err)
	}
	return nil
}

// Stats returns a snapshot of the gauges and counters.
func (o *Outbox) Stats() Stats {
	o.mu.Lock()
	s := Stats{
		BacklogRecords: o.durable - o.acked,
		BacklogBytes:   o.unacked,
		DiskBytes:      o.disk,
		Segments:       len(o.segments),
		DurableSeq:     o.durable,
		AckedSeq:       o.acked,
	}
	o.mu.Unlock()
	s.Appends = o.appends.Load()
	s.AppendBytes = o.appendBytes.Load()
	s.Fsyncs = o.fsyncs.Load()
	s.Refused = o.refused.Load()
	s.Acks = o.acks.Load()
	return s
}

// Dir returns the outbox directory.
func (o *Outbox) Dir() string { return o.dir }
