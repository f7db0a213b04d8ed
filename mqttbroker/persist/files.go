package persist

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/presenced/presenced/presence/durable"
)

// Files of a store directory:
//
//	snapshot                 the state as of the start of journal <gen>
//	snapshot.tmp             a snapshot being written (removed at Open)
//	journal-<gen>.log        changes since snapshot <gen>, one per generation
//	LOCK                     held by the process that has the store open
//
// Both kinds of file start with a 16-byte header: an 8-byte magic whose
// last byte is the format version, then the generation (uint64 LE).
const (
	snapshotName    = "snapshot"
	snapshotTmpName = "snapshot.tmp"
	journalPrefix   = "journal-"
	journalSuffix   = ".log"

	formatVersion = 1
	headerBytes   = 16
)

var (
	snapshotMagic = [8]byte{'P', 'R', 'S', 'B', 'S', 'N', 'P', formatVersion}
	journalMagic  = [8]byte{'P', 'R', 'S', 'B', 'J', 'N', 'L', formatVersion}
)

func fileHeader(magic [8]byte, gen uint64) []byte {
	return binary.LittleEndian.AppendUint64(magic[:], gen)
}

// parseHeader checks a file's header and returns its generation.
func parseHeader(buf []byte, magic [8]byte, what string) (uint64, error) {
	if len(buf) < headerBytes {
		return 0, fmt.Errorf("%s header is cut short (%d bytes)", what, len(buf))
	}
	if string(buf[:7]) != string(magic[:7]) {
		return 0, fmt.Errorf("%s header is %q, not a broker %s", what, buf[:7], what)
	}
	if buf[7] != magic[7] {
		return 0, fmt.Errorf("%s format version is %d; this presenced reads version %d", what, buf[7], magic[7])
	}
	return binary.LittleEndian.Uint64(buf[8:headerBytes]), nil
}

func journalName(gen uint64) string {
	return fmt.Sprintf("%s%020d%s", journalPrefix, gen, journalSuffix)
}

// listJournals returns the generations of the journal files in dir, oldest first.
func listJournals(dir string) ([]uint64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list journals: %w", err)
	}
	var gens []uint64
	for _, e := range entries {
		digits, ok := strings.CutPrefix(e.Name(), journalPrefix)
		if !ok {
			continue
		}
		if digits, ok = strings.CutSuffix(digits, journalSuffix); !ok {
			continue
		}
		gen, err := strconv.ParseUint(digits, 10, 64)
		if err != nil || len(digits) != 20 {
			return nil, fmt.Errorf("list journals: unexpected file %s in %s; move it away", e.Name(), dir)
		}
		gens = append(gens, gen)
	}
	slices.Sort(gens)
	return gens, nil
}

// createJournal creates journal <gen> holding only its header, and makes
// the file and its name durable before any record goes into it.
func createJournal(dir string, dirFile *os.File, gen uint64) (*os.File, error) {
	path := filepath.Join(dir, journalName(gen))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create journal: %w", err)
	}
	if _, err := f.WriteAt(fileHeader(journalMagic, gen), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("create journal %s: %w", path, err)
	}
	if err := durable.SyncFile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("create journal %s: %w", path, err)
	}
	if err := dirFile.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("create journal %s: sync directory: %w", path, err)
	}
	return f, nil
}
