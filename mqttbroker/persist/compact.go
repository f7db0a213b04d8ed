package persist

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/presenced/presenced/presence/durable"
)

// Compaction replaces the snapshot and the journals before it by a new
// snapshot of the state. Its steps, each crash-safe (Open recovers the
// same state after a crash between any two):
//
//  1. create journal <gen+1> (header, fsync, fsync dir) and write every
//     later group to it: the old snapshot + journal <gen> + journal
//     <gen+1> still hold the whole state;
//  2. write snapshot.tmp (header <gen+1>, the state's records, an end
//     record counting them) and fsync it: Open removes a leftover .tmp;
//  3. rename it to snapshot and fsync the directory: from now on Open
//     starts from it and ignores journals before <gen+1>;
//  4. remove those journals and fsync the directory.
//
// The snapshot's records are encoded under the store's lock with the
// group just written and nothing after it, so they are exactly the state
// journal <gen+1> starts from. The flusher takes step 1 itself, between
// two groups; steps 2–4 run in the background (one compaction at a time)
// while later groups go to the new journal, so appends do not wait for a
// snapshot to be written.

// compactDue says whether the journal, with n more bytes, is big enough to
// compact: past CompactBytes and twice the snapshot, and never past a
// third of MaxBytes (so that snapshot, new snapshot and journal fit).
func (s *Store) compactDue(n int64) bool {
	if s.compacting.Load() {
		return false
	}
	limit := min(max(s.compact, 2*s.snapshotBytes.Load()), s.maxBytes/3)
	return s.journalSize.Load()+n > limit
}

// encodeStateLocked encodes the state as snapshot records: each retained
// message, then each session with its subscriptions, in-flight messages,
// queue and unreleased ids. It returns them framed, and their number.
func (s *Store) encodeStateLocked() ([]byte, uint64) {
	buf := make([]byte, 0, s.liveBytes)
	var count uint64
	var body []byte
	add := func(rec *record) {
		body = appendBody(body[:0], rec)
		buf = appendFrame(buf, body)
		count++
	}
	for _, m := range s.state.Retained {
		add(&record{kind: kindSetRetained, msg: m})
	}
	for _, ss := range s.state.Sessions {
		who := SessionInfo{ClientID: ss.ClientID}
		add(&record{kind: kindPutSession, info: ss.SessionInfo})
		for filter, sub := range ss.Subscriptions {
			add(&record{kind: kindSubscribe, info: who, msg: Message{Topic: filter}, sub: sub})
		}
		for _, m := range ss.Inflight {
			add(&record{kind: kindSend, info: who, msg: m.Message, id: m.PacketID, released: m.Released})
		}
		for _, m := range ss.Queue {
			add(&record{kind: kindEnqueue, info: who, msg: m})
		}
		for id := range ss.Unreleased {
			add(&record{kind: kindHoldInbound, info: who, id: id})
		}
	}
	return buf, count
}

// compactInBackground takes step 1 and leaves the others to a goroutine
// the flusher waits for before it returns.
func (s *Store) compactInBackground(snap []byte, count uint64) {
	gen, err := s.startJournal()
	if err != nil {
		s.compactionFailed(err)
		return
	}
	s.compacting.Store(true)
	s.background.Go(func() {
		defer s.compacting.Store(false)
		s.finishCompaction(snap, count, gen)
	})
}

// finishCompaction takes steps 2–4.
func (s *Store) finishCompaction(snap []byte, count uint64, gen uint64) {
	size, err := s.writeSnapshotTmp(snap, count, gen)
	if err == nil {
		err = s.installSnapshot(size)
	}
	if err == nil {
		err = s.removeJournalsBefore(gen)
	}
	if err != nil {
		s.compactionFailed(err)
		return
	}
	s.compactions.Add(1)
}

// compactionFailed logs and counts; the store carries on with its
// journals, which still hold the whole state.
func (s *Store) compactionFailed(err error) {
	os.Remove(filepath.Join(s.dir, snapshotTmpName))
	s.compactFailures.Add(1)
	s.log.Error("broker persistence: compaction failed; journals kept", "dir", s.dir, "err", err)
}

// startJournal is step 1.
func (s *Store) startJournal() (uint64, error) {
	gen := s.gen + 1
	f, err := createJournal(s.dir, s.dirFile, gen)
	if err != nil {
		return 0, err
	}
	old := s.journal
	s.oldJournals.Add(s.journalSize.Load())
	s.journal, s.gen = f, gen
	s.journalSize.Store(headerBytes)
	old.Close() // synced after its last group; nothing is lost
	return gen, nil
}

// writeSnapshotTmp is step 2.
func (s *Store) writeSnapshotTmp(snap []byte, count uint64, gen uint64) (size int64, err error) {
	path := filepath.Join(s.dir, snapshotTmpName)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, fmt.Errorf("write snapshot: %w", err)
	}
	end := appendFrame(nil, appendBody(nil, &record{kind: kindEnd, count: count}))
	for _, part := range [][]byte{fileHeader(snapshotMagic, gen), snap, end} {
		if _, err = f.Write(part); err != nil {
			break
		}
	}
	if err == nil {
		err = durable.SyncFile(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("write snapshot %s: %w", path, err)
	}
	return int64(headerBytes + len(snap) + len(end)), nil
}

// installSnapshot is step 3.
func (s *Store) installSnapshot(size int64) error {
	if err := os.Rename(filepath.Join(s.dir, snapshotTmpName), filepath.Join(s.dir, snapshotName)); err != nil {
		return fmt.Errorf("install snapshot: %w", err)
	}
	if err := s.dirFile.Sync(); err != nil {
		return fmt.Errorf("install snapshot: sync directory: %w", err)
	}
	s.snapshotBytes.Store(size)
	return nil
}

// removeJournalsBefore is step 4.
func (s *Store) removeJournalsBefore(gen uint64) error {
	gens, err := listJournals(s.dir)
	if err != nil {
		return err
	}
	for _, g := range gens {
		if g < gen {
			if err := os.Remove(filepath.Join(s.dir, journalName(g))); err != nil {
				return fmt.Errorf("remove compacted journal: %w", err)
			}
		}
	}
	if err := s.dirFile.Sync(); err != nil {
		return fmt.Errorf("remove compacted journals: sync directory: %w", err)
	}
	s.oldJournals.Store(0)
	return nil
}
