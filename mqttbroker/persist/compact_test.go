package persist

import (
	"os"
	"path/filepath"
	"testing"
)

// A crash between any two steps of a compaction (compact.go) loses
// nothing: the state after reopening is the state before the crash,
// records appended to the new journal included.
func TestCrashDuringCompactionAtEachStep(t *testing.T) {
	ops := everyKindOps()
	half := len(ops) / 2
	var gen uint64
	var size int64
	steps := []func(s *Store, snap []byte, count uint64) error{
		func(s *Store, _ []byte, _ uint64) (err error) { gen, err = s.startJournal(); return err },
		func(s *Store, snap []byte, count uint64) (err error) {
			size, err = s.writeSnapshotTmp(snap, count, gen)
			return err
		},
		func(s *Store, _ []byte, _ uint64) error { return s.installSnapshot(size) },
		func(s *Store, _ []byte, _ uint64) error { return s.removeJournalsBefore(gen) },
	}
	for done := 0; done <= len(steps); done++ {
		for _, tornTmp := range []bool{false, true} {
			if tornTmp && done != 1 {
				continue // a torn snapshot.tmp: a crash inside step 2
			}
			dir := t.TempDir()
			s, _ := openStore(t, dir, Options{CompactBytes: 1 << 30})
			for _, op := range ops[:half] {
				mustAppend(t, s, op)
			}
			s.mu.Lock()
			snap, count := s.encodeStateLocked()
			s.mu.Unlock()
			for _, step := range steps[:done] {
				if err := step(s, snap, count); err != nil {
					t.Fatal(err)
				}
			}
			if tornTmp {
				if err := os.WriteFile(filepath.Join(dir, snapshotTmpName), append(fileHeader(snapshotMagic, gen), snap[:len(snap)/2]...), 0o640); err != nil {
					t.Fatal(err)
				}
			}
			for _, op := range ops[half:] { // into the new journal once step 1 is done
				mustAppend(t, s, op)
			}
			crash(s)

			s, st := openStore(t, dir, Options{})
			assertState(t, "reopened", st, wantEveryKind())
			if _, err := os.Stat(filepath.Join(dir, snapshotTmpName)); !os.IsNotExist(err) {
				t.Fatalf("after %d steps: snapshot.tmp left behind (%v)", done, err)
			}
			gens, _ := listJournals(dir)
			if done >= 3 && len(gens) != 1 {
				t.Fatalf("after %d steps: journals %v, want only the new one", done, gens)
			}
			// And the recovered store compacts and reopens cleanly.
			s.mu.Lock()
			snap, count = s.encodeStateLocked()
			s.mu.Unlock()
			s.compactWith(snap, count)
			if s.Stats().Compactions != 1 {
				t.Fatalf("after %d steps: compaction of the recovered store failed", done)
			}
			s.Close()
			s, st = openStore(t, dir, Options{})
			assertState(t, "compacted after recovery", st, wantEveryKind())
			s.Close()
		}
	}
}

// compactWith runs every step with the encoded state, in the caller's
// goroutine.
func (s *Store) compactWith(snap []byte, count uint64) {
	gen, err := s.startJournal()
	if err != nil {
		s.compactionFailed(err)
		return
	}
	s.finishCompaction(snap, count, gen)
}
