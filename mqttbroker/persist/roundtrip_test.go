package persist

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestRecordCodecEveryKind(t *testing.T) {
	ops := append(everyKindOps(), Op{record{kind: kindEnd, count: 12345}})
	seen := map[kind]bool{}
	for _, op := range ops {
		body := appendBody(nil, &op.rec)
		got, err := decodeBody(body)
		if err != nil {
			t.Fatalf("%s: decode: %v", op.rec.kind, err)
		}
		want := op.rec
		if len(want.msg.Payload) == 0 {
			want.msg.Payload = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: decoded %+v, want %+v", op.rec.kind, got, want)
		}
		seen[op.rec.kind] = true
		// Every strict prefix of a body, and the body with a byte more, is refused.
		for n := 0; n < len(body); n++ {
			if _, err := decodeBody(body[:n]); err == nil {
				t.Fatalf("%s: decoded a body cut at %d of %d bytes", op.rec.kind, n, len(body))
			}
		}
		if _, err := decodeBody(append(body, 0)); err == nil {
			t.Fatalf("%s: decoded a body with a byte left over", op.rec.kind)
		}
	}
	for k := kindSetRetained; k <= kindEnd; k++ {
		if !seen[k] {
			t.Errorf("no record of kind %s in the scenario", k)
		}
	}
}

func TestReopenRecoversEveryKind(t *testing.T) {
	for _, tc := range []struct {
		name    string
		compact int64 // 1: compact after every group
		close   func(*Store)
	}{
		{"journal/close", 0, func(s *Store) { s.Close() }},
		{"journal/crash", 0, crash},
		{"compacted/close", 1, func(s *Store) { s.Close() }},
		{"compacted/crash", 1, crash},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, st := openStore(t, dir, Options{CompactBytes: tc.compact})
			assertState(t, "new store", st, newState())
			for _, op := range everyKindOps() {
				mustAppend(t, s, op)
			}
			tc.close(s) // waits for a compaction running in the background
			if stats := s.Stats(); tc.compact == 1 && stats.Compactions == 0 {
				t.Fatalf("no compaction ran: %+v", stats)
			}
			s, st = openStore(t, dir, Options{})
			defer s.Close()
			assertState(t, "reopened", st, wantEveryKind())
			// The live size is what a snapshot of the state takes.
			s.mu.Lock()
			snap, _ := s.encodeStateLocked()
			live := s.liveBytes
			s.mu.Unlock()
			if int64(len(snap)) != live {
				t.Fatalf("live bytes %d, snapshot records %d bytes", live, len(snap))
			}
		})
	}
}

func TestStagedWithoutWaitIsWrittenByClose(t *testing.T) {
	dir := t.TempDir()
	s, _ := openStore(t, dir, Options{})
	for _, op := range everyKindOps() {
		if _, err := s.Stage(op); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stage(DeleteRetained("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("stage after close: %v, want ErrClosed", err)
	}
	s, st := openStore(t, dir, Options{})
	defer s.Close()
	assertState(t, "reopened", st, wantEveryKind())
}

func TestSecondOpenOfOneDirectoryIsRefused(t *testing.T) {
	dir := t.TempDir()
	s, _ := openStore(t, dir, Options{})
	defer s.Close()
	if _, _, err := Open(dir, Options{Log: quietLog()}); err == nil {
		t.Fatal("a second Open of the same directory succeeded")
	}
}

func TestCorruptSnapshotRefusesToOpen(t *testing.T) {
	dir := t.TempDir()
	s, _ := openStore(t, dir, Options{CompactBytes: 1})
	for _, op := range everyKindOps() {
		mustAppend(t, s, op)
	}
	s.Close()
	path := filepath.Join(dir, snapshotName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{b[:len(b)-1], append(append([]byte(nil), b[:headerBytes+9]...), b[headerBytes+10:]...)} {
		if err := os.WriteFile(path, bad, 0o640); err != nil {
			t.Fatal(err)
		}
		_, _, err := Open(dir, Options{Log: quietLog()})
		var corrupt *CorruptError
		if !errors.As(err, &corrupt) {
			t.Fatalf("open with a damaged snapshot: %v, want *CorruptError", err)
		}
	}
}

func TestInvalidOpIsRefusedBeforeStaging(t *testing.T) {
	s, _ := openStore(t, t.TempDir(), Options{})
	defer s.Close()
	for _, op := range []Op{
		SetRetained(Message{Topic: "t", Payload: []byte("x"), QoS: 3}),
		PutSession(SessionInfo{ClientID: "c", ExpireAt: -1}),
	} {
		if err := s.Append(PutSession(SessionInfo{ClientID: "ok"}), op); err == nil || errors.Is(err, ErrNoSpace) {
			t.Fatalf("append of an invalid %s: %v, want a refusal", op.rec.kind, err)
		}
	}
	if st := s.Stats(); st.Records != 0 {
		t.Fatalf("%d records staged with an invalid one", st.Records)
	}
}

// A failed journal write fails the store for good (a retry after a failed
// fsync can falsely succeed): the write's callers and every later Stage
// get an error, and reopening recovers what was durable.
func TestWriteFailureFailsTheStore(t *testing.T) {
	dir := t.TempDir()
	s, _ := openStore(t, dir, Options{})
	mustAppend(t, s, SetRetained(Message{Topic: "kept", Payload: []byte("x")}))
	s.journal.Close() // the next write fails
	if err := s.Append(SetRetained(Message{Topic: "lost", Payload: []byte("x")})); err == nil {
		t.Fatal("append into a closed journal succeeded")
	}
	if _, err := s.Stage(DeleteRetained("kept")); err == nil {
		t.Fatal("stage after a write failure succeeded")
	}
	if err := s.Close(); err == nil {
		t.Fatal("close after a write failure reported no error")
	}
	s, st := openStore(t, dir, Options{})
	defer s.Close()
	if _, ok := st.Retained["kept"]; !ok || len(st.Retained) != 1 {
		t.Fatalf("reopened: %s, want only the durable record", dump(st))
	}
}

func TestStagedCoversEveryEarlierStage(t *testing.T) {
	dir := t.TempDir()
	s, _ := openStore(t, dir, Options{})
	if err := s.Staged().Wait(); err != nil {
		t.Fatalf("nothing staged: %v", err)
	}
	// A Stage that staged nothing (everything refused, or invalid) leaves
	// nothing to wait for.
	if _, err := s.Stage(); err != nil {
		t.Fatal(err)
	}
	if err := s.Staged().Wait(); err != nil {
		t.Fatalf("after an empty stage: %v", err)
	}
	for _, op := range everyKindOps() {
		if _, err := s.Stage(op); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Staged().Wait(); err != nil {
		t.Fatal(err)
	}
	crash(s) // nothing waited for is lost
	s, st := openStore(t, dir, Options{})
	defer s.Close()
	assertState(t, "reopened", st, wantEveryKind())
}

// TestFilesArePrivateToTheOwner: the broker's state holds sessions,
// retained messages and queued payloads; its directory and files are the
// owner's alone.
func TestFilesArePrivateToTheOwner(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mqtt")
	s, _ := openStore(t, dir, Options{})
	defer s.Close()
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		t.Fatalf("%s holds %d files: %v", dir, len(entries), err)
	}
	modes := map[string]fs.FileMode{}
	if info, err := os.Stat(dir); err == nil {
		modes[dir] = info.Mode().Perm()
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil {
			modes[e.Name()] = info.Mode().Perm()
		}
	}
	for name, mode := range modes {
		if mode&0o077 != 0 {
			t.Errorf("%s has mode %v", name, mode)
		}
	}
}
