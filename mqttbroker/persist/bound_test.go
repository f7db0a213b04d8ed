package persist

import (
	"errors"
	"fmt"
	"os"
	"testing"
)

func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		n += info.Size()
	}
	return n
}

// At MaxBytes, records that grow the state are refused with ErrNoSpace
// and the files stay within the bound; removals always go through, and
// once they have made room, growing works again.
func TestDiskBoundRefusesGrowthNotRemoval(t *testing.T) {
	const maxBytes = 256 << 10
	dir := t.TempDir()
	s, _ := openStore(t, dir, Options{MaxBytes: maxBytes})
	defer s.Close()
	payload := make([]byte, 1000)
	mustAppend(t, s, PutSession(SessionInfo{ClientID: "dev"}))
	stored := 0
	var err error
	for i := 0; ; i++ {
		err = s.Append(SetRetained(Message{Topic: fmt.Sprintf("r/%d", i), Payload: payload}))
		if err != nil {
			break
		}
		stored++
		if n := dirBytes(t, dir); n > maxBytes {
			t.Fatalf("files take %d bytes, over MaxBytes %d", n, maxBytes)
		}
		if i > 10_000 {
			t.Fatal("never refused")
		}
	}
	var noSpace *NoSpaceError
	if !errors.Is(err, ErrNoSpace) || !errors.As(err, &noSpace) || noSpace.Refused != 1 {
		t.Fatalf("append at the bound: %v, want one refused with ErrNoSpace", err)
	}
	// Other growth is refused too; a batch keeps what fits (the removal).
	err = s.Append(Enqueue("dev", Message{Topic: "q", Payload: payload, QoS: 1}), Send("dev", 1, Message{Topic: "s", Payload: payload, QoS: 1}), DeleteRetained("r/0"))
	if !errors.As(err, &noSpace) || noSpace.Refused != 2 {
		t.Fatalf("mixed batch at the bound: %v, want 2 refused", err)
	}
	if st := s.Stats(); st.RefusedForSpace != 3 {
		t.Fatalf("RefusedForSpace = %d, want 3", st.RefusedForSpace)
	}
	// Removals always succeed, and make room again.
	for i := 1; i < stored; i++ {
		mustAppend(t, s, DeleteRetained(fmt.Sprintf("r/%d", i)))
	}
	mustAppend(t, s, SetRetained(Message{Topic: "again", Payload: payload}), Enqueue("dev", Message{Topic: "q", Payload: payload, QoS: 1}))
	if n := dirBytes(t, dir); n > maxBytes {
		t.Fatalf("files take %d bytes after the removals, over MaxBytes %d", n, maxBytes)
	}
	t.Logf("%d retained messages of 1000 B fit in MaxBytes %d; stats %+v", stored, maxBytes, s.Stats())
}
