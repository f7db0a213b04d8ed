package persist

import (
	"fmt"

	"github.com/presenced/presenced/presence/durable"
)

// group is one group commit: the records staged while the previous group
// was being written.
type group struct {
	buf  []byte
	done chan struct{} // closed when written and synced, or failed
	err  error
}

func newGroup() *group { return &group{done: make(chan struct{})} }

func (g *group) finish(err error) {
	g.err = err
	g.buf = nil
	close(g.done)
}

// flushLoop is the group committer: it writes the collecting group with
// one write and one fdatasync, then releases its waiters. While it syncs,
// new records gather in the next group, so the number of fsyncs adapts to
// the load: one per record when idle, one per many under load. Between
// groups it compacts when the journal has grown enough. It returns once
// the store is closed and nothing staged is left.
func (s *Store) flushLoop() {
	defer close(s.flusherDone)
	defer s.background.Wait()
	for {
		s.mu.Lock()
		for s.cur == nil || len(s.cur.buf) == 0 {
			if s.closed {
				s.mu.Unlock()
				return
			}
			s.mu.Unlock()
			<-s.flushWake
			s.mu.Lock()
		}
		g := s.cur
		s.cur = nil
		failed := s.failed
		// The snapshot is taken with g staged and nothing after it: it
		// is exactly what the journals hold once g is written, and
		// what follows goes to the next journal.
		var snap []byte
		var count uint64
		if failed == nil && s.compactDue(int64(len(g.buf))) {
			snap, count = s.encodeStateLocked()
		}
		s.mu.Unlock()

		if failed != nil {
			s.pendingBytes.Add(-int64(len(g.buf)))
			g.finish(fmt.Errorf("broker persistence unusable after a disk failure: %w", failed))
			continue
		}
		err := s.writeGroup(g)
		g.finish(err)
		if err == nil && snap != nil {
			s.compactInBackground(snap, count)
		}
	}
}

// writeGroup appends g to the active journal and syncs it. A failure
// fails the store: after a failed fdatasync the kernel may have dropped
// the dirty pages, and a retry can falsely succeed (the "fsyncgate"
// lesson); a restart recovers from what is on disk.
func (s *Store) writeGroup(g *group) error {
	n := int64(len(g.buf))
	defer s.pendingBytes.Add(-n)
	off := s.journalSize.Load()
	_, err := s.journal.WriteAt(g.buf, off)
	if err == nil {
		err = durable.SyncFile(s.journal)
	}
	if err != nil {
		s.log.Error("broker persistence: journal write failed; changes are refused until restart",
			"file", s.journal.Name(), "err", err)
		s.mu.Lock()
		s.failed = err
		s.mu.Unlock()
		return fmt.Errorf("write broker journal: %w", err)
	}
	s.journalSize.Store(off + n)
	s.fsyncs.Add(1)
	return nil
}
