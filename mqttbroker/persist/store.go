package persist

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"sync"
	"sync/atomic"

	"github.com/presenced/presenced/presence/durable"
)

// Defaults of Options.
const (
	DefaultMaxBytes     = 1 << 30
	DefaultCompactBytes = 64 << 20
)

var (
	// ErrNoSpace is returned (wrapped in a *NoSpaceError) when records that
	// would grow the state were refused because the store is at
	// Options.MaxBytes. The broker answers with its protocol's refusal.
	ErrNoSpace = errors.New("broker persistence is full")
	// ErrClosed is returned by Stage and Append after Close.
	ErrClosed = errors.New("broker persistence closed")
)

// NoSpaceError says how many of the records given to one Stage call were
// refused for space; the others were staged. It matches ErrNoSpace.
type NoSpaceError struct{ Refused int }

func (e *NoSpaceError) Error() string {
	return fmt.Sprintf("%v: %d change(s) refused", ErrNoSpace, e.Refused)
}

func (e *NoSpaceError) Unwrap() error { return ErrNoSpace }

// Options configure a Store. The zero value is usable.
type Options struct {
	// MaxBytes bounds the store's files on disk, compaction included (see
	// the package doc). Default DefaultMaxBytes.
	MaxBytes int64
	// CompactBytes is the journal size from which a compaction may start;
	// it starts when the journal is also twice the snapshot. Default
	// DefaultCompactBytes, and never more than MaxBytes/3.
	CompactBytes int64
	// Log receives recovery notices and write failures. Default slog.Default().
	Log *slog.Logger
}

// Stats are the store's gauges and counters, for metrics.
type Stats struct {
	JournalBytes  int64 // all journal files
	SnapshotBytes int64
	LiveBytes     int64 // the state's encoded size: what MaxBytes/3 bounds

	RecordsReplayed    uint64 // records read back at Open, snapshot and journals
	TornTruncated      uint64 // journals cut at a torn or corrupt record at Open
	TruncatedBytes     uint64 // bytes those cuts discarded
	Records            uint64 // records staged since Open
	Fsyncs             uint64 // group commits (each one fdatasync)
	Compactions        uint64 // snapshots installed
	CompactionFailures uint64 // compactions abandoned on an I/O error
	RefusedForSpace    uint64 // records refused with ErrNoSpace
}

// Store is the broker's durable state: an in-memory mirror of it, a
// snapshot file and an append-only journal in one directory. Stage and
// Append are safe for concurrent use.
type Store struct {
	dir      string
	dirFile  *os.File
	lockFile *os.File
	log      *slog.Logger
	maxBytes int64
	compact  int64

	mu        sync.Mutex
	state     *State
	sizer     sizer
	liveBytes int64
	cur       *group // collecting; nil when none
	last      *group // the newest group with records, collecting or written
	closed    bool
	failed    error // a failed write or sync: the store takes nothing more

	// Owned by the flusher after Open (read by Stats through the atomics).
	journal       *os.File
	gen           uint64
	journalSize   atomic.Int64 // of the active journal, durable bytes
	oldJournals   atomic.Int64 // of journals a failed compaction left behind
	snapshotBytes atomic.Int64
	pendingBytes  atomic.Int64 // staged, not yet written
	flushWake     chan struct{}
	flusherDone   chan struct{}
	compacting    atomic.Bool    // steps 2–4 of a compaction are running
	background    sync.WaitGroup // the compaction's goroutine

	replayed, torn, truncatedBytes                atomic.Uint64
	records, fsyncs, compactions, compactFailures atomic.Uint64
	refused                                       atomic.Uint64
}

// Open opens (creating it if needed) the store in dir, recovers its state
// and returns it with a copy of that state for the broker to rebuild
// from. Only one process may have dir open at a time.
func Open(dir string, opts Options) (*Store, *State, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.CompactBytes <= 0 {
		opts.CompactBytes = DefaultCompactBytes
	}
	opts.CompactBytes = min(opts.CompactBytes, opts.MaxBytes/3)
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("open broker persistence: %w", err)
	}
	lockFile, err := durable.LockDir(dir, "broker persistence")
	if err != nil {
		return nil, nil, err
	}
	dirFile, err := os.Open(dir)
	if err != nil {
		lockFile.Close()
		return nil, nil, fmt.Errorf("open broker persistence: %w", err)
	}
	s := &Store{
		dir: dir, dirFile: dirFile, lockFile: lockFile, log: opts.Log,
		maxBytes: opts.MaxBytes, compact: opts.CompactBytes,
		state:     newState(),
		flushWake: make(chan struct{}, 1), flusherDone: make(chan struct{}),
	}
	if err := s.recover(); err != nil {
		s.closeFiles()
		return nil, nil, fmt.Errorf("open broker persistence in %s: %w", dir, err)
	}
	go s.flushLoop()
	return s, s.state.clone(), nil
}

// Pending is the outcome of a Stage call: Wait returns once its records
// are durable, or could not be made so.
type Pending struct{ g *group }

// Wait blocks until the staged records are durable and returns nil, or
// returns the write failure.
func (p Pending) Wait() error {
	if p.g == nil {
		return nil
	}
	<-p.g.done
	return p.g.err
}

// Stage applies ops to the state, in order, and queues them for the next
// group commit without waiting for it; call Wait on the result before
// acknowledging anything that depends on them. Concurrent Stage calls are
// ordered as they take the store's lock, so a caller that stages under its
// own lock (a session's) gets the journal in that lock's order.
//
// Records that would grow the state past the bound are refused one by
// one, the others staged: the error is then a *NoSpaceError. Records that
// remove, move or mark are never refused.
func (s *Store) Stage(ops ...Op) (Pending, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Pending{}, ErrClosed
	}
	if s.failed != nil {
		return Pending{}, fmt.Errorf("broker persistence unusable after a disk failure: %w", s.failed)
	}
	for i := range ops {
		if err := ops[i].rec.check(); err != nil {
			return Pending{}, err // a caller's bug: nothing is staged
		}
	}
	if s.cur == nil {
		s.cur = newGroup()
	}
	g, before := s.cur, len(s.cur.buf)
	refused := 0
	for i := range ops {
		rec := &ops[i].rec
		delta := s.sizer.sizeDelta(s.state, rec)
		if rec.kind.adds() && delta > 0 && !s.roomFor(delta) {
			refused++
			continue
		}
		s.state.apply(rec)
		s.liveBytes += delta
		s.sizer.scratch = appendBody(s.sizer.scratch[:0], rec)
		g.buf = appendFrame(g.buf, s.sizer.scratch)
	}
	s.records.Add(uint64(len(ops) - refused))
	var err error
	if refused > 0 {
		s.refused.Add(uint64(refused))
		err = &NoSpaceError{Refused: refused}
	}
	added := len(g.buf) - before
	if added == 0 {
		return Pending{}, err
	}
	s.pendingBytes.Add(int64(added))
	s.last = g // a group with records: the flusher will write it
	select {
	case s.flushWake <- struct{}{}:
	default:
	}
	return Pending{g}, err
}

// Staged returns the outcome of everything staged so far, by any caller:
// groups are written in order, so waiting for the newest covers all. The
// broker waits on it before an acknowledgement that depends on changes
// staged on its way (a PUBLISH routed to many sessions).
func (s *Store) Staged() Pending {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Pending{s.last}
}

// Append is Stage then Wait: it returns once the records are durable.
// Concurrent callers share one fdatasync.
func (s *Store) Append(ops ...Op) error {
	p, err := s.Stage(ops...)
	if werr := p.Wait(); werr != nil {
		return werr
	}
	return err
}

// roomFor says whether the state may grow by delta bytes: the live state
// stays within a third of MaxBytes, and the files on disk plus room for
// the next snapshot (the live state) within MaxBytes. Called with mu held.
func (s *Store) roomFor(delta int64) bool {
	if s.liveBytes+delta > s.maxBytes/3 {
		return false
	}
	disk := s.snapshotBytes.Load() + s.journalSize.Load() + s.oldJournals.Load() + s.pendingBytes.Load()
	return disk+s.liveBytes+2*delta <= s.maxBytes
}

// Stats returns the store's gauges and counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	live := s.liveBytes
	s.mu.Unlock()
	return Stats{
		JournalBytes:       s.journalSize.Load() + s.oldJournals.Load(),
		SnapshotBytes:      s.snapshotBytes.Load(),
		LiveBytes:          live,
		RecordsReplayed:    s.replayed.Load(),
		TornTruncated:      s.torn.Load(),
		TruncatedBytes:     s.truncatedBytes.Load(),
		Records:            s.records.Load(),
		Fsyncs:             s.fsyncs.Load(),
		Compactions:        s.compactions.Load(),
		CompactionFailures: s.compactFailures.Load(),
		RefusedForSpace:    s.refused.Load(),
	}
}

// Close writes what is staged, waits for it, and closes the files. Stage
// fails with ErrClosed afterwards.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.mu.Unlock()
	select {
	case s.flushWake <- struct{}{}:
	default:
	}
	<-s.flusherDone
	s.mu.Lock()
	failed := s.failed
	s.mu.Unlock()
	if err := s.closeFiles(); err != nil && failed == nil {
		failed = err
	}
	if failed != nil {
		return fmt.Errorf("close broker persistence: %w", failed)
	}
	return nil
}

func (s *Store) closeFiles() error {
	var errs []error
	if s.journal != nil {
		errs = append(errs, s.journal.Close())
	}
	errs = append(errs, s.dirFile.Close(), s.lockFile.Close())
	return errors.Join(errs...)
}

// clone copies the state's maps and slices (not the message bytes, which
// are never modified), so the caller's copy is unaffected by later changes.
func (st *State) clone() *State {
	c := &State{Retained: make(map[string]Message, len(st.Retained)), Sessions: make(map[string]*Session, len(st.Sessions))}
	maps.Copy(c.Retained, st.Retained)
	for id, ss := range st.Sessions {
		cs := &Session{SessionInfo: ss.SessionInfo,
			Queue: append([]Message(nil), ss.Queue...), Inflight: append([]Inflight(nil), ss.Inflight...)}
		cs.Subscriptions = maps.Clone(ss.Subscriptions)
		cs.Unreleased = maps.Clone(ss.Unreleased)
		c.Sessions[id] = cs
	}
	return c
}
