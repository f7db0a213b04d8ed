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
// A group write that fails (typically ENOSPC: the disk is full) is cut
// back to the last record boundary, and the cut is synced before anyone is
// told, so no refused record can reappear after a crash; a cut that fails
// is a disk failure (below). The group's
// connect and node events are then refused (see When full), and its
// disconnect and tcpclean events are kept and written again, with
// presence.Backoff between tries, until write and fdatasync succeed; their
// Append calls wait for that, and so do later disconnect and tcpclean
// appends. Sequence numbers stay positions in the log: the records behind
// a refused one move down to fill its place.
//
// A failed fdatasync is a disk failure and fatal (the fsyncgate lesson:
// after one, the kernel may have dropped the dirty pages and a retry can
// falsely succeed): the group's appends fail, and so does every later one
// until the outbox is reopened, which recovers from what is on disk. One exception: ENOSPC or EDQUOT from
// fdatasync (NFS, thin-provisioned volumes and some filesystems allocate
// only at writeback) is handled like a failed write. The pages it concerns
// are exactly those of the failed group, written since the last successful
// sync; truncating them away and syncing the cut leaves the segment as it
// was, and the retry writes the records again from memory, so nothing
// depends on what the kernel kept.
//
// The broker's close path waits in Append for each tcpclean, so while the
// disk stays completely full it blocks; the number of such appends is
// bounded by the connections already admitted. Close waits at most
// Options.CloseWait for queued records to become durable; those still not
// durable then are given up, and their Append calls return an error.
// disconnect and tcpclean events given up there, or failed by a disk
// failure, were accepted and are lost: Stats.Lost counts them, and Close
// returns an error saying how many, so the caller can exit non-zero.
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
// The outbox is bounded by Options.MaxBytes of segment files, and by the
// free space of the disk: Options.MinFreeBytes is a reserve kept free on
// its filesystem and on those of Options.WatchDirs (the private
// PostgreSQL's, which shares the volume and must never fill up). When the
// segment files reach MaxBytes, when free space falls below the reserve, or
// while a group write is being retried because the disk is full, connect
// events (and node events) are refused at once with a presence.EOVERLOADED
// error, which makes the broker refuse the CONNECT with CONNACK 0x03 — no
// client is admitted whose presence could not be recorded. Refusing for
// want of space ends by itself once free space is back above 1.25 × the
// reserve (the margin keeps it from flapping). Free space is measured with
// statfs at most every 250 ms, and at once after a failed write.
//
// disconnect and tcpclean events are always accepted, beyond MaxBytes and
// into the reserve: refusing them would leave admitted clients online
// forever in the store, and their number is bounded by the clients already
// connected (each admitted connect brings at most two more events), so the
// overshoot is bounded too. The reserve exists so that they still fit.
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
	"time"

	"github.com/presenced/presenced/presence"

	"github.com/presenced/presenced/presence/durable"
)

// Defaults of Options.
const (
	DefaultMaxBytes     = 1 << 30
	DefaultSegmentBytes = 64 << 20
	DefaultCloseWait    = 10 * time.Second
	// maxGroupBytes bounds one group commit. It is also how much of the end
	// of the last segment recovery may treat as a torn write: anything
	// longer that is invalid is corruption.
	maxGroupBytes = 4 << 20
)

// ErrClosed is returned by Append and Read after Close.
var ErrClosed = errors.New("outbox closed")

// errGivenUp is returned to the appenders of records Close gave up on.
var errGivenUp = fmt.Errorf("%w before the event could be made durable", ErrClosed)

// Options configure an Outbox. The zero value is usable.
type Options struct {
	// MaxBytes bounds the segment files on disk; see the package doc for
	// what happens when they reach it. Default DefaultMaxBytes.
	MaxBytes int64
	// SegmentBytes is the size at which a new segment is started. Space is
	// reclaimed a whole segment at a time, so it is capped at MaxBytes/8.
	// Default DefaultSegmentBytes.
	SegmentBytes int64
	// MinFreeBytes is the disk space to keep free on the outbox's
	// filesystem and on those of WatchDirs; see the package doc. 0 (the
	// default) disables the check.
	MinFreeBytes int64
	// WatchDirs are more directories whose filesystems must keep
	// MinFreeBytes free.
	WatchDirs []string
	// EmergencyBytes is disk space the outbox keeps aside, in a file of
	// its own, for disconnect and tcpclean records when the volume is
	// filled to the last byte by someone else (see ballast.go). 0 means
	// DefaultEmergencyBytes when MinFreeBytes is set (none without the
	// guard); negative means none.
	EmergencyBytes int64
	// CloseWait bounds how long Close waits for queued records to become
	// durable. Default DefaultCloseWait.
	CloseWait time.Duration
	// Log receives recovery notices and write failures. Default slog.Default().
	Log *slog.Logger

	// Tests replace these; nil means the real thing.
	now       func() time.Time
	freeSpace func(path string) (int64, error)
	syncData  func(*os.File) error
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

	// DiskFree is the smallest free space last seen on the watched
	// filesystems (0 when MinFreeBytes is 0).
	DiskFree int64
	// LowDisk is true while connect and node events are refused for want
	// of disk space (below the reserve, or a full disk being retried).
	LowDisk bool
	// LowDiskRefused counts connect and node events refused for want of
	// disk space; those refused for MaxBytes are counted in Refused.
	LowDiskRefused uint64
	// Lost counts disconnect and tcpclean events accepted but never made
	// durable: given up by Close while the disk stayed full, or after a
	// disk failure. Anything but 0 means presence truth was lost.
	Lost uint64
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
	guard    *diskGuard // nil when MinFreeBytes is 0
	ballast  *ballast   // nil without the guard; owned by the flusher after Open
	sync     func(*os.File) error

	flushWake   chan struct{} // cap 1: tells the flusher a group is waiting
	flusherDone chan struct{}
	closeWait   time.Duration
	// giveUp is cancelled when Close stops waiting: the flusher then
	// stops retrying and fails what is still queued.
	giveUp     context.Context
	stopTrying context.CancelFunc

	// Owned by the flusher goroutine.
	active       *os.File
	activeSize   int64 // bytes written to active, durable or not
	writeFailing bool  // the last group write failed

	ackMu sync.Mutex // serializes checkpoint writes

	reader reader // reading state; see reader.go

	mu       sync.Mutex
	closed   bool
	failed   error    // sticky: the disk lost writes we cannot account for
	retrying error    // refuses connect and node events while a group is retried
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
	// spare is the buffer of the last group written, kept for the next
	// new group: under load a group's buffer is otherwise grown from
	// nothing, copy by copy, for every group commit.
	spare []byte

	appends, appendBytes, fsyncs, refused, acks atomic.Uint64
	lowDiskRefused, lost                        atomic.Uint64
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
		sync:        opts.syncData,
		flushWake:   make(chan struct{}, 1),
		flusherDone: make(chan struct{}),
		closeWait:   opts.CloseWait,
		readable:    make(chan struct{}),
	}
	if o.sync == nil {
		o.sync = durable.SyncFile
	}
	if o.closeWait <= 0 {
		o.closeWait = DefaultCloseWait
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

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	lock, err := durable.LockDir(dir, "outbox")
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
	if opts.MinFreeBytes > 0 {
		o.guard = newDiskGuard(opts.MinFreeBytes, append([]string{dir}, opts.WatchDirs...), opts.freeSpace, opts.now, o.log)
		size := opts.EmergencyBytes
		if size == 0 {
			size = DefaultEmergencyBytes
		}
		o.ballast = newBallast(dir, size, o.log, o.roomFor, o.sync, o.dirFile.Sync)
		o.ballast.ensure(time.Now())
	}
	o.giveUp, o.stopTrying = context.WithCancel(context.Background())
	go o.flushLoop()
	return o, nil
}

// Append makes ev durable and returns nil, or returns why it could not:
// a presence.EOVERLOADED error for a connect event when the outbox or the
// disk is full, ErrClosed after Close (also for a disconnect or tcpclean
// that Close gave up on), a presence.EUNAVAILABLE error when the disk
// fails.
//
// ctx is only checked before the event is queued: once queued it will be
// written, so Append waits for the fsync rather than report a failure for
// an event that then appears anyway (a connect the broker refused must
// never be recorded). The wait is one group commit — or, for a disconnect
// or tcpclean while the disk is full, until space returns or Close gives
// up.
func (o *Outbox) Append(ctx context.Context, ev presence.Event) error {
	// Encoded and framed (checksum included) outside the lock, into a
	// pooled buffer that goes back as soon as the record is in its group.
	rec := frameEvent(&ev)
	mustAccept := alwaysAccepted(ev.Type)
	g, err := o.admit(ctx, *rec, KindEvent, nil, mustAccept)
	releaseRecord(rec)
	if err != nil {
		return err
	}
	o.wakeFlusher()
	return g.wait(mustAccept)
}

// alwaysAccepted says which events the outbox takes even when full: those
// that record a connection's end (see the package doc).
func alwaysAccepted(t presence.EventType) bool {
	return t == presence.EventDisconnect || t == presence.EventTCPClean
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
	g, err := o.admit(ctx, nil, kind, payload, mustAccept)
	if err != nil {
		return err
	}
	o.wakeFlusher()
	return g.wait(mustAccept)
}

// admit queues one record unless it is refused: either rec, already
// framed, or kind and payload, framed under the lock. It returns the
// group to wait on.
func (o *Outbox) admit(ctx context.Context, rec []byte, kind Kind, payload []byte, mustAccept bool) (*group, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	body := 1 + len(payload)
	if rec != nil {
		body = len(rec) - recordHeaderBytes
	}
	if body > maxBodyBytes {
		return nil, presence.Errorf(presence.EINVALID, "outbox record of %d bytes is larger than %d", body, maxBodyBytes)
	}
	size := int64(recordHeaderBytes + body)
	// Outside o.mu: at most every diskCheckInterval one appender pays for
	// the statfs calls, and it should not hold up the others meanwhile.
	var lowDisk error
	if !mustAccept && o.guard != nil {
		lowDisk = o.guard.refusal()
	}

	o.mu.Lock()
	switch {
	case o.closed:
		o.mu.Unlock()
		return nil, ErrClosed
	case o.failed != nil:
		err := o.failed
		o.mu.Unlock()
		return nil, presence.Errorf(presence.EUNAVAILABLE, "event outbox unusable after a disk failure: %v", err)
	case mustAccept:
	case lowDisk != nil || o.retrying != nil:
		if lowDisk == nil {
			lowDisk = o.retrying
		}
		o.mu.Unlock()
		o.lowDiskRefused.Add(1)
		return nil, lowDisk
	case o.disk+o.pending+size > o.maxBytes:
		disk := o.disk + o.pending
		o.mu.Unlock()
		o.refused.Add(1)
		return nil, presence.Errorf(presence.EOVERLOADED, "event outbox full (%d of %d bytes waiting to be forwarded)", disk, o.maxBytes)
	}
	var g *group
	if rec != nil {
		g = o.enqueueRecord(rec, mustAccept)
	} else {
		g = o.enqueue(kind, payload, mustAccept)
	}
	o.mu.Unlock()
	return g, nil
}

// enqueue adds a record to the newest group, or to a new one, and returns
// the group. o.mu must be held.
func (o *Outbox) enqueue(kind Kind, payload []byte, mustAccept bool) *group {
	g := o.groupFor(int64(recordHeaderBytes + 1 + len(payload)))
	g.add(kind, payload, mustAccept)
	return g
}

// enqueueRecord is enqueue for a record already framed. o.mu must be
// held.
func (o *Outbox) enqueueRecord(rec []byte, mustAccept bool) *group {
	g := o.groupFor(int64(len(rec)))
	g.addRecord(rec, mustAccept)
	return g
}

// groupFor returns the group a record of size bytes goes into, and
// counts it. o.mu must be held.
func (o *Outbox) groupFor(size int64) *group {
	var g *group
	if n := len(o.groups); n > 0 && int64(len(o.groups[n-1].buf))+size <= maxGroupBytes {
		g = o.groups[n-1]
	} else {
		g = newGroup(o.nextSeq)
		g.buf, o.spare = o.spare, nil
		o.groups = append(o.groups, g)
	}
	o.nextSeq++
	o.pending += size
	return g
}

func (o *Outbox) wakeFlusher() {
	select {
	case o.flushWake <- struct{}{}:
	default: // the flusher is already told
	}
}

// Close stops accepting appends, writes what was queued, wakes a waiting
// Read with ErrClosed, and closes the files. Acknowledged positions are
// already durable (Ack writes them), so nothing else needs saving.
//
// Writing what was queued takes at most Options.CloseWait (plus a write
// or fsync already under way); disconnect and tcpclean events still not
// durable then are given up, and Close returns an error saying how many
// such events the outbox lost since Open (Stats.Lost). Without that error,
// every event accepted is durable.
func (o *Outbox) Close() error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil
	}
	o.closed = true
	close(o.readable)
	o.mu.Unlock()
	o.wakeFlusher()
	deadline := time.NewTimer(o.closeWait)
	select {
	case <-o.flusherDone:
	case <-deadline.C:
		o.stopTrying()
		<-o.flusherDone
	}
	deadline.Stop()
	o.stopTrying()
	o.reader.close()
	err := o.closeFiles()
	if lost := o.lost.Load(); lost > 0 {
		err = errors.Join(fmt.Errorf("close outbox: %d disconnect/tcpclean events were accepted but could not be made durable", lost), err)
	}
	return err
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
	var reading diskReading
	if o.guard != nil {
		reading = *o.guard.current()
	}
	o.mu.Lock()
	s := Stats{
		BacklogRecords: o.durable - o.acked,
		BacklogBytes:   o.unacked,
		DiskBytes:      o.disk,
		Segments:       len(o.segments),
		DurableSeq:     o.durable,
		AckedSeq:       o.acked,
		DiskFree:       reading.free,
		LowDisk:        reading.low || presence.ErrorCode(o.retrying) == presence.EOVERLOADED,
	}
	o.mu.Unlock()
	s.Appends = o.appends.Load()
	s.AppendBytes = o.appendBytes.Load()
	s.Fsyncs = o.fsyncs.Load()
	s.Refused = o.refused.Load()
	s.Acks = o.acks.Load()
	s.LowDiskRefused = o.lowDiskRefused.Load()
	s.Lost = o.lost.Load()
	return s
}

// Dir returns the outbox directory.
func (o *Outbox) Dir() string { return o.dir }
