package persist

import (
	"os"
	"testing"
)

// A crash can cut the last record anywhere: at every byte offset inside
// it, reopening must give the state before that record, and cut it away.
func TestTornLastRecordAtEveryOffset(t *testing.T) {
	ops := everyKindOps()
	dir := t.TempDir()
	s, _ := openStore(t, dir, Options{})
	for _, op := range ops[:len(ops)-3] {
		mustAppend(t, s, op)
	}
	s.mu.Lock()
	before := s.state.clone()
	s.mu.Unlock()
	path := journalPath(t, dir)
	sizeBefore := fileSize(t, path)
	// The last record: a queued message, so the cut lands in every field.
	mustAppend(t, s, Enqueue("dev-1", Message{Topic: "t/last", Payload: []byte("the last record"), QoS: 1, Props: []byte{1, 1}}))
	s.mu.Lock()
	after := s.state.clone()
	s.mu.Unlock()
	sizeAfter := fileSize(t, path)
	crash(s)

	for cut := sizeBefore; cut <= sizeAfter; cut++ {
		torn := copyDir(t, dir)
		tornPath := journalPath(t, torn)
		if err := os.Truncate(tornPath, cut); err != nil {
			t.Fatal(err)
		}
		s, st := openStore(t, torn, Options{})
		stats := s.Stats()
		want, wantTorn := before, uint64(1)
		switch cut {
		case sizeBefore:
			wantTorn = 0
		case sizeAfter:
			want, wantTorn = after, 0
		}
		assertState(t, "reopened after a cut", st, want)
		if stats.TornTruncated != wantTorn {
			t.Fatalf("cut at %d: TornTruncated = %d, want %d", cut, stats.TornTruncated, wantTorn)
		}
		if wantTorn == 1 && fileSize(t, tornPath) != sizeBefore {
			t.Fatalf("cut at %d: journal is %d bytes after recovery, want %d", cut, fileSize(t, tornPath), sizeBefore)
		}
		// The store goes on appending after the cut, and that survives too.
		mustAppend(t, s, SetRetained(Message{Topic: "after/cut", Payload: []byte("x")}))
		crash(s)
		s, st = openStore(t, torn, Options{})
		if _, ok := st.Retained["after/cut"]; !ok || s.Stats().TornTruncated != 0 {
			t.Fatalf("cut at %d: the append after recovery is missing or the journal is torn again", cut)
		}
		s.Close()
	}
}

// A record with a bad checksum in the middle stops the replay there: the
// records before it are the state, the journal is cut at it.
func TestCorruptRecordInTheMiddleStopsReplay(t *testing.T) {
	ops := everyKindOps()
	dir := t.TempDir()
	s, _ := openStore(t, dir, Options{})
	path := journalPath(t, dir)
	const bad = 10
	var want *State
	var offset int64
	for i, op := range ops {
		if i == bad {
			s.mu.Lock()
			want = s.state.clone()
			s.mu.Unlock()
			offset = fileSize(t, path)
		}
		mustAppend(t, s, op)
	}
	crash(s)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[offset+frameHeaderBytes+2] ^= 0x40 // a byte of the body: the checksum no longer matches
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}
	s, st := openStore(t, dir, Options{})
	defer s.Close()
	assertState(t, "reopened", st, want)
	stats := s.Stats()
	if stats.TornTruncated != 1 || stats.TruncatedBytes != uint64(int64(len(b))-offset) {
		t.Fatalf("stats %+v, want one cut of %d bytes", stats, int64(len(b))-offset)
	}
	if got := fileSize(t, path); got != offset {
		t.Fatalf("journal is %d bytes, want it cut at %d", got, offset)
	}
}
