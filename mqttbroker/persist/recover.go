package persist

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/presenced/presenced/presence/durable"
)

// CorruptError reports a snapshot that is not whole and valid. A snapshot
// is only ever installed complete and synced (see compact.go), so this is
// not a crash's doing: Open refuses to start rather than run with a state
// it cannot vouch for; an operator moves the file away (losing what it
// held) or restores it.
type CorruptError struct {
	File   string
	Offset int64
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("broker snapshot %s is corrupt at byte offset %d: %s", e.File, e.Offset, e.Reason)
}

// recover rebuilds the state: the snapshot, then every journal from the
// snapshot's generation on, in order, stopping at the first record that
// is torn or corrupt. It leaves the last journal open for appending.
func (s *Store) recover() error {
	if err := os.Remove(filepath.Join(s.dir, snapshotTmpName)); err == nil {
		s.log.Warn("broker persistence: removed a snapshot left half-written by a crash", "dir", s.dir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove unfinished snapshot: %w", err)
	}
	snapGen, err := s.loadSnapshot()
	if err != nil {
		return err
	}
	gens, err := listJournals(s.dir)
	if err != nil {
		return err
	}
	var replay []uint64
	for _, gen := range gens {
		if gen < snapGen {
			// Step 4 of a compaction that crashed before finishing it.
			if err := os.Remove(filepath.Join(s.dir, journalName(gen))); err != nil {
				return fmt.Errorf("remove compacted journal: %w", err)
			}
			continue
		}
		replay = append(replay, gen)
	}
	for i, gen := range replay {
		stopped, err := s.replayJournal(gen, i == len(replay)-1)
		if err != nil {
			return err
		}
		if !stopped {
			continue
		}
		// What follows a cut cannot be applied on top of it: later
		// journals assumed the records that were lost.
		for _, later := range replay[i+1:] {
			s.log.Error("broker persistence: removing a journal that follows a truncated one", "file", journalName(later))
			if err := os.Remove(filepath.Join(s.dir, journalName(later))); err != nil {
				return fmt.Errorf("remove journal after a truncated one: %w", err)
			}
		}
		replay = replay[:i+1]
		break
	}
	if err := s.dirFile.Sync(); err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	if len(replay) == 0 {
		s.gen = max(snapGen, 1)
		f, err := createJournal(s.dir, s.dirFile, s.gen)
		if err != nil {
			return err
		}
		s.journal = f
		s.journalSize.Store(headerBytes)
		return nil
	}
	s.gen = replay[len(replay)-1]
	f, err := os.OpenFile(filepath.Join(s.dir, journalName(s.gen)), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open journal: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open journal: %w", err)
	}
	s.journal = f
	s.journalSize.Store(info.Size())
	return nil
}

// loadSnapshot applies the snapshot, if there is one, and returns its
// generation (0 without one).
func (s *Store) loadSnapshot() (uint64, error) {
	path := filepath.Join(s.dir, snapshotName)
	buf, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read snapshot: %w", err)
	}
	gen, err := parseHeader(buf, snapshotMagic, "snapshot")
	if err != nil {
		return 0, &CorruptError{File: path, Reason: err.Error()}
	}
	var count uint64
	for off := headerBytes; ; {
		body, size, why := parseFrame(buf[off:])
		if why != "" {
			if off == len(buf) {
				why = "the end record is missing"
			}
			return 0, &CorruptError{File: path, Offset: int64(off), Reason: why}
		}
		rec, err := decodeBody(body)
		if err != nil {
			return 0, &CorruptError{File: path, Offset: int64(off), Reason: err.Error()}
		}
		off += size
		if rec.kind == kindEnd {
			if rec.count != count || off != len(buf) {
				return 0, &CorruptError{File: path, Offset: int64(off - size),
					Reason: fmt.Sprintf("end record counts %d records, %d read, %d bytes after it", rec.count, count, len(buf)-off)}
			}
			break
		}
		s.applyRecovered(&rec)
		count++
	}
	s.snapshotBytes.Store(int64(len(buf)))
	return gen, nil
}

// replayJournal applies journal gen. At the first torn or corrupt record
// it truncates the file there (durably) and reports stopped. A journal
// whose header is torn — a crash while it was being created, the only
// time it is written — is rewritten empty when it is the last one.
func (s *Store) replayJournal(gen uint64, last bool) (stopped bool, err error) {
	path := filepath.Join(s.dir, journalName(gen))
	buf, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("read journal: %w", err)
	}
	fileGen, herr := parseHeader(buf, journalMagic, "journal")
	switch {
	case herr != nil && len(buf) <= headerBytes && last:
		s.log.Warn("broker persistence: journal header torn by a crash; starting it again", "file", path)
		f, err := createJournal(s.dir, s.dirFile, gen)
		if err != nil {
			return false, err
		}
		return false, f.Close()
	case herr != nil:
		return false, fmt.Errorf("journal %s: %w; move it away", path, herr)
	case fileGen != gen:
		return false, fmt.Errorf("journal %s holds generation %d; move it away", path, fileGen)
	}
	end, why := scanRecords(buf[headerBytes:], s.applyRecovered)
	if why != "" {
		return true, s.truncateJournal(path, int64(headerBytes+end), int64(len(buf)), why)
	}
	s.oldJournals.Add(int64(len(buf))) // recover moves the last one to journalSize
	if last {
		s.oldJournals.Add(-int64(len(buf)))
	}
	return false, nil
}

// scanRecords decodes the journal records in buf, calling apply with each,
// up to the first that is torn or corrupt. It returns where the valid
// records end, and why they end there ("" at the end of buf).
func scanRecords(buf []byte, apply func(*record)) (end int, why string) {
	for end < len(buf) {
		body, size, why := parseFrame(buf[end:])
		if why != "" {
			return end, why
		}
		rec, err := decodeBody(body)
		if err == nil && rec.kind == kindEnd {
			err = errors.New("an end record belongs in a snapshot")
		}
		if err != nil {
			return end, err.Error()
		}
		apply(&rec)
		end += size
	}
	return end, ""
}

func (s *Store) applyRecovered(rec *record) {
	s.liveBytes += s.sizer.sizeDelta(s.state, rec)
	s.state.apply(rec)
	s.replayed.Add(1)
}

// truncateJournal cuts a journal at off, where its records stop being
// valid, and makes the cut durable. A crash tears at most the group being
// written, which no caller was told is durable; anything longer is
// corruption, and everything from it on is dropped too, because records
// past a bad one cannot be trusted to follow it (their framing may be
// lost) — it is logged as an error, with what was discarded.
func (s *Store) truncateJournal(path string, off, size int64, why string) error {
	s.log.Error("broker persistence: journal truncated at a torn or corrupt record",
		"file", path, "offset", off, "discarded_bytes", size-off, "reason", why)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("truncate journal: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(off); err != nil {
		return fmt.Errorf("truncate journal %s: %w", path, err)
	}
	if err := durable.SyncFile(f); err != nil {
		return fmt.Errorf("truncate journal %s: %w", path, err)
	}
	s.torn.Add(1)
	s.truncatedBytes.Add(uint64(size - off))
	return nil
}
