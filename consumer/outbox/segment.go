package outbox

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/presenced/presenced/presence/durable"
)

// Segment files are named by the sequence number of their first record, in
// 20 zero-padded digits so that names sort in sequence order, and start with
// a small header that identifies the format.
const (
	segmentSuffix      = ".seg"
	segmentHeader      = "PRSOBX\x00\x01" // magic and format version 1
	segmentHeaderBytes = len(segmentHeader)
)

// segment is one segment file as the outbox knows it.
type segment struct {
	base uint64 // sequence number of the first record
	path string
	// size is the file's durable length: every byte below it was written
	// and fsynced and ends on a record boundary. Only durable bytes are
	// ever read.
	size int64
}

func segmentName(base uint64) string { return fmt.Sprintf("%020d%s", base, segmentSuffix) }

func segmentPath(dir string, base uint64) string { return filepath.Join(dir, segmentName(base)) }

// listSegments returns the segment files in dir, oldest first. Their sizes
// are left for the caller to fill.
func listSegments(dir string) ([]*segment, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list outbox segments: %w", err)
	}
	var segs []*segment
	for _, e := range entries {
		name := e.Name()
		digits, ok := strings.CutSuffix(name, segmentSuffix)
		if !ok || e.IsDir() {
			continue
		}
		base, err := strconv.ParseUint(digits, 10, 64)
		if err != nil || len(digits) != 20 || base == 0 {
			return nil, fmt.Errorf("list outbox segments: unexpected file %s in %s; move it away", name, dir)
		}
		segs = append(segs, &segment{base: base, path: filepath.Join(dir, name)})
	}
	slices.SortFunc(segs, func(a, b *segment) int {
		switch {
		case a.base < b.base:
			return -1
		case a.base > b.base:
			return 1
		}
		return 0
	})
	return segs, nil
}

// createSegment creates an empty segment file holding only its header, and
// makes the file and its name durable before any record goes into it, so a
// crash never leaves a named-but-headerless segment behind except when the
// header write itself was torn (recovery rewrites it).
func createSegment(dir string, dirFile *os.File, base uint64) (*segment, *os.File, error) {
	path := segmentPath(dir, base)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("create outbox segment: %w", err)
	}
	if _, err := f.WriteAt([]byte(segmentHeader), 0); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("create outbox segment %s: %w", path, err)
	}
	if err := durable.SyncFile(f); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("create outbox segment %s: %w", path, err)
	}
	if err := dirFile.Sync(); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("create outbox segment %s: sync directory: %w", path, err)
	}
	return &segment{base: base, path: path, size: int64(segmentHeaderBytes)}, f, nil
}

// CorruptError reports a record that is not valid where valid records must
// be: not in the torn tail a crash can leave. The outbox cannot skip it
// safely (the framing after it is lost), so reading stops; an operator must
// move the file away or truncate it at Offset.
type CorruptError struct {
	File   string
	Offset int64
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("outbox segment %s is corrupt at byte offset %d: %s", e.File, e.Offset, e.Reason)
}

// scanResult is what scanSegment found.
type scanResult struct {
	records uint64
	end     int64 // offset just past the last valid record
	// badReason is set when scanning stopped at bytes that are not a valid
	// record (or a record cut short) before the end of the file.
	badReason string
	fileSize  int64
}

// scanSegment reads records of f from offset from on, calling fn (if not
// nil) with each record's end offset, until the end of the file, until fn
// returns false, or until an invalid record. It checks the header first.
func scanSegment(f *os.File, path string, from int64, fn func(kind Kind, end int64) bool) (scanResult, error) {
	info, err := f.Stat()
	if err != nil {
		return scanResult{}, fmt.Errorf("scan outbox segment %s: %w", path, err)
	}
	res := scanResult{fileSize: info.Size(), end: from}
	if res.fileSize < int64(segmentHeaderBytes) {
		res.end = 0
		res.badReason = "segment header is cut short"
		return res, nil
	}
	header := make([]byte, segmentHeaderBytes)
	if _, err := f.ReadAt(header, 0); err != nil {
		return scanResult{}, fmt.Errorf("scan outbox segment %s: %w", path, err)
	}
	if !bytes.Equal(header, []byte(segmentHeader)) {
		if res.fileSize == int64(segmentHeaderBytes) {
			// A crash while the segment was being created.
			res.end = 0
			res.badReason = "segment header is torn"
			return res, nil
		}
		return scanResult{}, &CorruptError{File: path, Offset: 0, Reason: fmt.Sprintf("segment header is %q, want %q", header, segmentHeader)}
	}
	const chunkBytes = 1 << 20
	buf := make([]byte, 0, chunkBytes)
	offset := from // file offset of buf[0]
	for {
		// buf holds an unparsed remainder; read more behind it. A full
		// buffer means one record is bigger than it: grow (records are
		// bounded by maxBodyBytes, so this stops).
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), 2*cap(buf))
			copy(grown, buf)
			buf = grown
		}
		n, err := f.ReadAt(buf[len(buf):cap(buf)], offset+int64(len(buf)))
		buf = buf[:len(buf)+n]
		eof := errors.Is(err, io.EOF)
		if err != nil && !eof {
			return scanResult{}, fmt.Errorf("scan outbox segment %s: %w", path, err)
		}
		pos := 0
		for pos < len(buf) {
			result, kind, _, size, why := parseRecord(buf[pos:])
			if result == parsedShort && !eof {
				break // read more
			}
			if result != parsedRecord {
				res.badReason = why
				res.end = offset + int64(pos)
				return res, nil
			}
			pos += size
			res.records++
			res.end = offset + int64(pos)
			if fn != nil && !fn(kind, res.end) {
				return res, nil
			}
		}
		if eof && pos == len(buf) {
			return res, nil
		}
		buf = buf[:copy(buf, buf[pos:])]
		offset += int64(pos)
	}
}
