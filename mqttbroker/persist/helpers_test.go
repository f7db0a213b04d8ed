package persist

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openStore(t testing.TB, dir string, opts Options) (*Store, *State) {
	t.Helper()
	if opts.Log == nil {
		opts.Log = quietLog()
	}
	s, st, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s, st
}

// crash stops s as a killed process would: what is staged and not yet
// written is lost, the files are closed as they are, the lock released.
func crash(s *Store) {
	s.mu.Lock()
	s.closed = true
	if s.cur != nil {
		s.cur.finish(ErrClosed)
		s.cur = nil
	}
	s.mu.Unlock()
	select {
	case s.flushWake <- struct{}{}:
	default:
	}
	<-s.flusherDone
	s.closeFiles()
}

func mustAppend(t testing.TB, s *Store, ops ...Op) {
	t.Helper()
	if err := s.Append(ops...); err != nil {
		t.Fatalf("append: %v", err)
	}
}

// normalized makes states comparable: empty and nil maps, slices and
// payloads are the same state.
func normalized(st *State) *State {
	c := st.clone()
	msg := func(m Message) Message {
		if len(m.Payload) == 0 {
			m.Payload = nil
		}
		if len(m.Props) == 0 {
			m.Props = nil
		}
		return m
	}
	for k, m := range c.Retained {
		c.Retained[k] = msg(m)
	}
	for _, ss := range c.Sessions {
		if len(ss.Subscriptions) == 0 {
			ss.Subscriptions = nil
		}
		if len(ss.Unreleased) == 0 {
			ss.Unreleased = nil
		}
		if len(ss.Queue) == 0 {
			ss.Queue = nil
		}
		if len(ss.Inflight) == 0 {
			ss.Inflight = nil
		}
		for i := range ss.Queue {
			ss.Queue[i] = msg(ss.Queue[i])
		}
		for i := range ss.Inflight {
			ss.Inflight[i].Message = msg(ss.Inflight[i].Message)
		}
	}
	return c
}

func assertState(t testing.TB, what string, got, want *State) {
	t.Helper()
	g, w := normalized(got), normalized(want)
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s: state differs\n got: %s\nwant: %s", what, dump(g), dump(w))
	}
}

func dump(st *State) string {
	s := fmt.Sprintf("retained=%d:", len(st.Retained))
	for k, m := range st.Retained {
		s += fmt.Sprintf(" %s=%q/q%d", k, m.Payload, m.QoS)
	}
	for id, ss := range st.Sessions {
		s += fmt.Sprintf(" | session %s %+v subs=%v queue=%d inflight=%+v unreleased=%v",
			id, ss.SessionInfo, ss.Subscriptions, len(ss.Queue), ss.Inflight, ss.Unreleased)
	}
	return s
}

func journalPath(t testing.TB, dir string) string {
	t.Helper()
	gens, err := listJournals(dir)
	if err != nil || len(gens) == 0 {
		t.Fatalf("no journal in %s: %v", dir, err)
	}
	return filepath.Join(dir, journalName(gens[len(gens)-1]))
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

// copyDir copies the store's files (not LOCK) to a fresh directory.
func copyDir(t testing.TB, from string) string {
	t.Helper()
	to := t.TempDir()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "LOCK" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

// everyKindOps is a scenario that uses every kind of record, and wantEveryKind
// the state it must leave, written out by hand.
func everyKindOps() []Op {
	m := func(topic, payload string, qos byte) Message {
		return Message{Topic: topic, Payload: []byte(payload), QoS: qos, Props: []byte{0x01, 0x01}}
	}
	return []Op{
		SetRetained(m("a/b", "one", 1)),
		SetRetained(m("a/c", "two", 0)),
		SetRetained(m("a/b", "three", 2)), // replaces
		DeleteRetained("a/c"),
		PutSession(SessionInfo{ClientID: "dev-1", ExpiryInterval: 3600}),
		Subscribe("dev-1", "a/#", Subscription{Options: 0x01}),
		Subscribe("dev-1", "b/+", Subscription{Options: 0x2e, Identifier: 7}),
		Subscribe("dev-1", "gone", Subscription{Options: 0x00}),
		Unsubscribe("dev-1", "gone"),
		Enqueue("dev-1", m("a/1", "q1", 1)),
		Enqueue("dev-1", m("a/2", "q2", 2)),
		Enqueue("dev-1", m("a/3", "q3", 1)),
		Enqueue("dev-1", Message{Topic: "a/4", Payload: []byte("q4"), QoS: 1, Props: []byte{0x01, 0x01}, ExpireAt: 1_800_000_000_000_000_000}),
		Dequeue("dev-1"),       // drops q1
		SendQueued("dev-1", 5), // q2 in flight as 5
		Send("dev-1", 6, Message{Topic: "b/x", Payload: []byte("direct"), QoS: 2, Retain: true}),
		Send("dev-1", 7, m("b/y", "acked", 1)),
		Released("dev-1", 5),
		Acked("dev-1", 7),
		HoldInbound("dev-1", 42),
		HoldInbound("dev-1", 43),
		ReleaseInbound("dev-1", 42),
		PutSession(SessionInfo{ClientID: "dev-1", ExpiryInterval: 3600, ExpireAt: 1_900_000_000_000_000_000}),
		PutSession(SessionInfo{ClientID: "dev-2"}),
		Enqueue("dev-2", m("x", "lost with the session", 1)),
		DeleteSession("dev-2"),
		Enqueue("dev-2", m("x", "for no session: ignored", 1)),
	}
}

func wantEveryKind() *State {
	props := []byte{0x01, 0x01}
	return &State{
		Retained: map[string]Message{"a/b": {Topic: "a/b", Payload: []byte("three"), QoS: 2, Props: props}},
		Sessions: map[string]*Session{"dev-1": {
			SessionInfo:   SessionInfo{ClientID: "dev-1", ExpiryInterval: 3600, ExpireAt: 1_900_000_000_000_000_000},
			Subscriptions: map[string]Subscription{"a/#": {Options: 0x01}, "b/+": {Options: 0x2e, Identifier: 7}},
			Queue: []Message{
				{Topic: "a/3", Payload: []byte("q3"), QoS: 1, Props: props},
				{Topic: "a/4", Payload: []byte("q4"), QoS: 1, Props: props, ExpireAt: 1_800_000_000_000_000_000},
			},
			Inflight: []Inflight{
				{Message: Message{Topic: "a/2", Payload: []byte("q2"), QoS: 2, Props: props}, PacketID: 5, Released: true},
				{Message: Message{Topic: "b/x", Payload: []byte("direct"), QoS: 2, Retain: true}, PacketID: 6},
			},
			Unreleased: map[uint16]struct{}{43: {}},
		}},
	}
}
