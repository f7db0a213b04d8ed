package outbox

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// lastSegment returns the path of the newest segment file.
func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	files := segmentFiles(t, dir)
	if len(files) == 0 {
		t.Fatal("no segment files")
	}
	return files[len(files)-1]
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

func appendToFile(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func flipByte(t *testing.T, path string, offset int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, offset); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, offset); err != nil {
		t.Fatal(err)
	}
}

// A crash mid-write leaves a record cut short (or garbage) at the end of
// the last segment: Open truncates it, keeps every complete record, and
// appends after it.
func TestTornTailIsTruncated(t *testing.T) {
	tails := map[string]func(t *testing.T, path string, size int64){
		"record cut short": func(t *testing.T, path string, size int64) {
			full := appendRecord(nil, KindEvent, []byte(`{"clientId":"x","channelId":"y"}`))
			appendToFile(t, path, full[:len(full)-5])
		},
		"header cut short": func(t *testing.T, path string, size int64) {
			appendToFile(t, path, []byte{40, 0, 0})
		},
		"zeros from delayed allocation": func(t *testing.T, path string, size int64) {
			appendToFile(t, path, make([]byte, 4096))
		},
		"last record's checksum wrong": func(t *testing.T, path string, size int64) {
			flipByte(t, path, size-3)
		},
	}
	for name, tear := range tails {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			o := openOutbox(t, dir, Options{SegmentBytes: 1024})
			appendN(t, o, 0, 10)
			o.Close()
			path := lastSegment(t, dir)
			size := fileSize(t, path)
			tear(t, path, size)

			o = openOutbox(t, dir, Options{SegmentBytes: 1024})
			want := 10
			if name == "last record's checksum wrong" {
				want = 9 // the damaged record is the torn one
			}
			if st := o.Stats(); st.DurableSeq != uint64(want) {
				t.Fatalf("DurableSeq %d after recovery, want %d", st.DurableSeq, want)
			}
			if got := fileSize(t, path); got > size {
				t.Fatalf("segment is %d bytes after recovery, more than the %d valid ones", got, size)
			}
			appendN(t, o, want, 3)
			checkEvents(t, readAll(t, o, want+3, 100), 0, 1)
		})
	}
}

func TestTornSegmentHeaderIsRewritten(t *testing.T) {
	dir := t.TempDir()
	o := openOutbox(t, dir, Options{SegmentBytes: 1024})
	appendN(t, o, 0, 3)
	o.Close()
	// A crash right after the roll created the next segment.
	if err := os.WriteFile(filepath.Join(dir, segmentName(4)), make([]byte, segmentHeaderBytes), 0o640); err != nil {
		t.Fatal(err)
	}
	o = openOutbox(t, dir, Options{SegmentBytes: 1024})
	appendN(t, o, 3, 2)
	checkEvents(t, readAll(t, o, 5, 100), 0, 1)
}

// Invalid bytes in a segment that is not the last cannot come from a crash:
// reading stops there with an error naming file and offset.
func TestCorruptRecordInTheMiddleStopsReading(t *testing.T) {
	dir := t.TempDir()
	o := openOutbox(t, dir, Options{SegmentBytes: 1024})
	appendN(t, o, 0, 40)
	o.Close()
	files := segmentFiles(t, dir)
	if len(files) < 3 {
		t.Fatalf("%d segments, want at least 3", len(files))
	}
	victim := files[1]
	offset := int64(segmentHeaderBytes) + 20
	flipByte(t, victim, offset)

	o = openOutbox(t, dir, Options{SegmentBytes: 1024})
	var corrupt *CorruptError
	for range 100 {
		_, err := o.ReadNow(7)
		if err == nil {
			continue
		}
		if !errors.As(err, &corrupt) {
			t.Fatalf("Read: %v, want *CorruptError", err)
		}
		break
	}
	if corrupt == nil || corrupt.File != victim || corrupt.Offset != int64(segmentHeaderBytes) {
		t.Fatalf("corruption reported as %+v, want file %s offset %d", corrupt, victim, segmentHeaderBytes)
	}
	t.Log(corrupt)
	// It stays stopped rather than skipping ahead.
	if _, err := o.ReadNow(7); !errors.As(err, &corrupt) {
		t.Fatalf("second Read: %v", err)
	}
}

// Invalid bytes at the end of the last segment followed by more than one
// group write's worth of bytes are damage, not a torn write: Open refuses.
func TestCorruptionTooLargeForATornWriteFailsOpen(t *testing.T) {
	dir := t.TempDir()
	var data []byte
	data = append(data, segmentHeader...)
	data = appendRecord(data, KindEvent, []byte(`{"clientId":"a"}`))
	bad := len(data)
	data = append(data, 0xff, 0xff, 0xff, 0x7f) // an impossible length
	for len(data) < bad+maxGroupBytes+1024 {
		data = appendRecord(data, KindEvent, make([]byte, 1000))
	}
	path := filepath.Join(dir, segmentName(1))
	if err := os.WriteFile(path, data, 0o640); err != nil {
		t.Fatal(err)
	}
	o, err := Open(dir, Options{Log: quietLog()})
	if err == nil {
		o.Close()
		t.Fatal("Open accepted a segment corrupt before 4 MiB of records")
	}
	var corrupt *CorruptError
	if !errors.As(err, &corrupt) || corrupt.File != path || corrupt.Offset != int64(bad) {
		t.Fatalf("Open: %v, want *CorruptError at %s:%d", err, path, bad)
	}
	if fileSize(t, path) != int64(len(data)) {
		t.Fatal("Open truncated a corrupt segment it refused")
	}
}

// A checkpoint that is lost or unreadable makes the outbox forward again
// what is still on disk (the store absorbs duplicates) rather than refuse
// to start.
func TestUnreadableCheckpointForwardsAgain(t *testing.T) {
	dir := t.TempDir()
	o := openOutbox(t, dir, Options{})
	appendN(t, o, 0, 5)
	recs := readAll(t, o, 3, 3)
	if err := o.Ack(recs[2].Seq); err != nil {
		t.Fatal(err)
	}
	o.Close()
	if err := os.WriteFile(filepath.Join(dir, checkpointName), []byte("garbage"), 0o640); err != nil {
		t.Fatal(err)
	}
	o = openOutbox(t, dir, Options{})
	checkEvents(t, readAll(t, o, 5, 10), 0, 1)
}

// Records are numbered on across restarts even after every segment was
// acknowledged and deleted.
func TestSequenceContinuesAfterEverythingWasAcknowledged(t *testing.T) {
	dir := t.TempDir()
	o := openOutbox(t, dir, Options{SegmentBytes: 1024})
	appendN(t, o, 0, 30)
	recs := readAll(t, o, 30, 30)
	if err := o.Ack(recs[29].Seq); err != nil {
		t.Fatal(err)
	}
	o.Close()
	for _, f := range segmentFiles(t, dir) {
		os.Remove(f) // as if the deletions had all happened
	}
	o = openOutbox(t, dir, Options{SegmentBytes: 1024})
	appendN(t, o, 30, 2)
	checkEvents(t, readAll(t, o, 2, 10), 30, 31)
}
