package outbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/presenced/presenced/presence"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openOutbox(t testing.TB, dir string, opts Options) *Outbox {
	t.Helper()
	if opts.Log == nil {
		opts.Log = quietLog()
	}
	o, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

func testEvent(typ presence.EventType, n int) presence.Event {
	return presence.Event{
		ClientID:  fmt.Sprintf("GID_test@@@device-%d", n),
		ChannelID: fmt.Sprintf("%032x", n),
		Type:      typ,
		Time:      1732240000000 + int64(n),
		ClientIP:  "203.0.113.7:52311",
		Node:      "broker-a",
		Epoch:     "e1",
	}
}

func appendN(t testing.TB, o *Outbox, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := o.Append(context.Background(), testEvent(presence.EventConnect, i)); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
}

// readAll reads n records, failing if they do not arrive in time.
func readAll(t testing.TB, o *Outbox, n, batch int) []Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []Record
	for len(out) < n {
		recs, err := o.Read(ctx, min(batch, n-len(out)))
		if err != nil {
			t.Fatalf("Read after %d of %d records: %v", len(out), n, err)
		}
		out = append(out, recs...)
	}
	return out
}

// checkEvents asserts that recs are events from..from+len-1 with sequence
// numbers starting at seq.
func checkEvents(t testing.TB, recs []Record, from int, seq uint64) {
	t.Helper()
	for i, rec := range recs {
		ev, err := rec.Event()
		if err != nil {
			t.Fatalf("record %d: %v", rec.Seq, err)
		}
		want := testEvent(presence.EventConnect, from+i)
		if rec.Seq != seq+uint64(i) || ev.ChannelID != want.ChannelID || ev.ClientID != want.ClientID {
			t.Fatalf("record %d is seq %d %s, want seq %d %s", i, rec.Seq, ev, seq+uint64(i), want)
		}
	}
}

func segmentFiles(t testing.TB, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestAppendReadAckAcrossSegmentRolls(t *testing.T) {
	dir := t.TempDir()
	o := openOutbox(t, dir, Options{SegmentBytes: 1024})
	appendN(t, o, 0, 200)
	if n := len(segmentFiles(t, dir)); n < 10 {
		t.Fatalf("%d segment files after 200 appends into 1 KiB segments, want many", n)
	}
	st := o.Stats()
	if st.BacklogRecords != 200 || st.Appends != 200 || st.DurableSeq != 200 || st.BacklogBytes <= 0 {
		t.Fatalf("stats after appends: %+v", st)
	}

	first := readAll(t, o, 120, 7)
	checkEvents(t, first, 0, 1)
	if err := o.Ack(first[len(first)-1].Seq); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	rest := readAll(t, o, 80, 50)
	checkEvents(t, rest, 120, 121)
	if recs, err := o.ReadNow(10); err != nil || len(recs) != 0 {
		t.Fatalf("ReadNow past the end = %d records, %v", len(recs), err)
	}
	if err := o.Ack(rest[len(rest)-1].Seq); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	st = o.Stats()
	if st.BacklogRecords != 0 || st.BacklogBytes != 0 || st.AckedSeq != 200 || st.Segments != 1 {
		t.Fatalf("stats after acking everything: %+v", st)
	}
	if n := len(segmentFiles(t, dir)); n != 1 {
		t.Fatalf("%d segment files left after acking everything, want only the active one", n)
	}
	// Appending and reading go on after the deletions.
	appendN(t, o, 200, 30)
	checkEvents(t, readAll(t, o, 30, 100), 200, 201)
}

func TestRestartResumesAtFirstUnacknowledged(t *testing.T) {
	dir := t.TempDir()
	o := openOutbox(t, dir, Options{SegmentBytes: 2048})
	appendN(t, o, 0, 50)
	recs := readAll(t, o, 30, 30)
	if err := o.Ack(recs[19].Seq); err != nil { // 1..20 acknowledged, 21..30 read only
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}

	o = openOutbox(t, dir, Options{SegmentBytes: 2048})
	if st := o.Stats(); st.BacklogRecords != 30 || st.AckedSeq != 20 || st.DurableSeq != 50 {
		t.Fatalf("stats after restart: %+v", st)
	}
	appendN(t, o, 50, 5)
	checkEvents(t, readAll(t, o, 35, 8), 20, 21)
}

func TestRewindRereadsUnacknowledged(t *testing.T) {
	o := openOutbox(t, t.TempDir(), Options{SegmentBytes: 1024})
	appendN(t, o, 0, 40)
	recs := readAll(t, o, 25, 25)
	if err := o.Ack(recs[9].Seq); err != nil {
		t.Fatal(err)
	}
	o.Rewind()
	checkEvents(t, readAll(t, o, 30, 4), 10, 11)
	if err := o.Ack(5); err != nil {
		t.Fatalf("acking an acknowledged record again: %v", err)
	}
	if err := o.Ack(41); err == nil {
		t.Fatal("acking a record never read succeeded")
	}
}

func TestNodeEventsShareTheLog(t *testing.T) {
	o := openOutbox(t, t.TempDir(), Options{})
	ctx := context.Background()
	appendN(t, o, 0, 1)
	ne := presence.NodeEvent{Node: "broker-a", Epoch: "e1", Type: presence.NodeHeartbeat, Time: 1, Seq: 7, LeaseMillis: 15000}
	if err := o.AppendNode(ctx, ne); err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, o, 2, 10)
	if recs[0].Kind != KindEvent || recs[1].Kind != KindNode {
		t.Fatalf("kinds %s, %s", recs[0].Kind, recs[1].Kind)
	}
	got, err := recs[1].NodeEvent()
	if err != nil || got.Seq != 7 || got.Type != presence.NodeHeartbeat {
		t.Fatalf("node event %+v, %v", got, err)
	}
	if _, err := recs[1].Event(); err == nil {
		t.Fatal("a node record decoded as a lifecycle event")
	}
}

func TestConcurrentAppendersAreAllDurableInTheirOrder(t *testing.T) {
	dir := t.TempDir()
	o := openOutbox(t, dir, Options{SegmentBytes: 64 << 10})
	const appenders, each = 50, 100
	var wg sync.WaitGroup
	errs := make(chan error, appenders)
	for a := range appenders {
		wg.Go(func() {
			for i := range each {
				if err := o.Append(context.Background(), testEvent(presence.EventConnect, a*each+i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := o.Stats()
	if st.Appends != appenders*each || st.Fsyncs >= appenders*each {
		t.Fatalf("%d appends in %d fsyncs: no group commit", st.Appends, st.Fsyncs)
	}
	t.Logf("%d appends in %d fsyncs", st.Appends, st.Fsyncs)

	// Every event exactly once; each appender's events in its order.
	lastOf := make([]int, appenders)
	for i := range lastOf {
		lastOf[i] = -1
	}
	for _, rec := range readAll(t, o, appenders*each, 500) {
		ev, err := rec.Event()
		if err != nil {
			t.Fatal(err)
		}
		var n int
		fmt.Sscanf(ev.ChannelID, "%x", &n)
		a, i := n/each, n%each
		if i != lastOf[a]+1 {
			t.Fatalf("appender %d: event %d after %d", a, i, lastOf[a])
		}
		lastOf[a] = i
	}
}

func TestFullOutboxRefusesConnectButAcceptsDisconnectAndTCPClean(t *testing.T) {
	o := openOutbox(t, t.TempDir(), Options{MaxBytes: 16 << 10, SegmentBytes: 1024})
	ctx := context.Background()
	admitted := 0
	for ; ; admitted++ {
		err := o.Append(ctx, testEvent(presence.EventConnect, admitted))
		if err != nil {
			if presence.ErrorCode(err) != presence.EOVERLOADED {
				t.Fatalf("connect %d: %v, want EOVERLOADED", admitted, err)
			}
			break
		}
		if admitted > 1000 {
			t.Fatal("a 16 KiB outbox accepted 1000 connects")
		}
	}
	// Node events are smaller; a few may still fit, but not many.
	nodes := 0
	for ; ; nodes++ {
		err := o.AppendNode(ctx, presence.NodeEvent{Node: "n", Epoch: "e", Type: presence.NodeHeartbeat, Time: 1})
		if presence.ErrorCode(err) == presence.EOVERLOADED {
			break
		}
		if err != nil || nodes > 5 {
			t.Fatalf("node event %d into a full outbox: %v, want EOVERLOADED", nodes, err)
		}
	}
	// The admitted clients' truth must still be recorded.
	for i := range admitted {
		for _, typ := range []presence.EventType{presence.EventDisconnect, presence.EventTCPClean} {
			if err := o.Append(ctx, testEvent(typ, i)); err != nil {
				t.Fatalf("%s %d into a full outbox: %v", typ, i, err)
			}
		}
	}
	st := o.Stats()
	if st.Refused != 2 || st.DiskBytes <= 16<<10 {
		t.Fatalf("stats: %+v", st)
	}
	// Draining makes room again.
	recs := readAll(t, o, 3*admitted+nodes, 1000)
	if err := o.Ack(recs[len(recs)-1].Seq); err != nil {
		t.Fatal(err)
	}
	if err := o.Append(ctx, testEvent(presence.EventConnect, 9999)); err != nil {
		t.Fatalf("connect after draining: %v", err)
	}
}

// The outbox runs in a synctest bubble so that the test knows Read is
// waiting when Close comes (synctest.Wait returns once every goroutine of
// the bubble is durably blocked: the reader on the outbox's readable
// channel, the flusher on its wake channel), instead of sleeping and
// hoping; and a Read that Close fails to wake makes the bubble's clock
// run to the 5 s limit at once.
func TestCloseWakesReaderAndRefusesAppends(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := openOutbox(t, t.TempDir(), Options{})
		// Cancelled only when the test ends, so that a Read Close did not
		// wake still returns and the bubble can end: the test then fails
		// on its own terms rather than with a deadlock panic.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		got := make(chan error, 1)
		go func() {
			_, err := o.Read(ctx, 10)
			got <- err
		}()
		synctest.Wait() // Read is waiting for a record
		select {
		case err := <-got:
			t.Fatalf("Read returned before Close: %v", err)
		default:
		}
		if err := o.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-got:
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("Read woken by Close: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not wake Read")
		}
		if err := o.Append(context.Background(), testEvent(presence.EventTCPClean, 1)); !errors.Is(err, ErrClosed) {
			t.Fatalf("Append after Close: %v", err)
		}
	})
}

func TestSecondOpenOfTheSameDirectoryFails(t *testing.T) {
	dir := t.TempDir()
	openOutbox(t, dir, Options{})
	if o, err := Open(dir, Options{Log: quietLog()}); err == nil {
		o.Close()
		t.Fatal("a second Open of an outbox in use succeeded")
	}
}

func TestReadWaitsForAppend(t *testing.T) {
	o := openOutbox(t, t.TempDir(), Options{})
	got := make(chan []Record, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		recs, _ := o.Read(ctx, 10)
		got <- recs
	}()
	appendN(t, o, 0, 1)
	select {
	case recs := <-got:
		checkEvents(t, recs, 0, 1)
	case <-time.After(10 * time.Second):
		t.Fatal("Read did not wake up on Append")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := o.Read(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read with a cancelled context: %v", err)
	}
}

func TestMain(m *testing.M) {
	os.Exit(m.Run())
}

// TestFilesArePrivateToTheOwner: the outbox holds client addresses and
// user names; its directory and files are the owner's alone.
func TestFilesArePrivateToTheOwner(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	o := openOutbox(t, dir, Options{})
	if err := o.Append(context.Background(), testEvent(presence.EventConnect, 1)); err != nil {
		t.Fatal(err)
	}
	checkPrivate(t, dir)
}

// checkPrivate fails t unless dir and everything in it are inaccessible to
// group and others.
func checkPrivate(t *testing.T, dir string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v", path, info.Mode().Perm())
		}
		n++
		return nil
	})
	if err != nil || n < 3 {
		t.Fatalf("walked %d entries of %s: %v", n, dir, err)
	}
}
