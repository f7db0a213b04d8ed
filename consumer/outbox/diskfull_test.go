//go:build linux

package outbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"

	"github.com/presenced/presenced/presence/durable"
)

// mountTmpfs mounts a tmpfs of size (e.g. "16m") for the test, so the test
// can fill a real filesystem; it skips the test when it cannot mount (not
// root, no mount namespace).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a tmpfs to fill: %v", err)
	}
	// Registered after TempDir's cleanup, so it runs before it.
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillDisk writes a file in dir until the filesystem is full, or until
// only keep bytes are free when keep > 0, and returns its path.
func fillDisk(t *testing.T, dir string, keep int64) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for {
		buf := chunk
		if keep > 0 {
			free, err := freeBytes(dir)
			if err != nil {
				t.Fatal(err)
			}
			if free <= keep {
				return path
			}
			buf = chunk[:min(int64(len(chunk)), free-keep)]
		}
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", dir, err)
			}
			return path
		}
	}
}

// fakeClock is the guard's clock: time moves only when the test says.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1732240000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// expire makes the guard's cached reading stale.
func (c *fakeClock) expire() {
	c.mu.Lock()
	c.now = c.now.Add(diskCheckInterval)
	c.mu.Unlock()
}

// enqueueGroup queues evs as one group commit, as appenders arriving while
// the flusher is busy would, and returns a channel with each one's Append
// result.
func enqueueGroup(t *testing.T, o *Outbox, evs ...presence.Event) []chan error {
	t.Helper()
	results := make([]chan error, len(evs))
	o.mu.Lock()
	var first *group
	for i, ev := range evs {
		payload, err := json.Marshal(ev)
		if err != nil {
			o.mu.Unlock()
			t.Fatal(err)
		}
		must := alwaysAccepted(ev.Type)
		g := o.enqueue(KindEvent, payload, must)
		if first == nil {
			first = g
		}
		if g != first {
			o.mu.Unlock()
			t.Fatalf("event %d went into another group", i)
		}
		results[i] = make(chan error, 1)
		go func() { results[i] <- g.wait(must) }()
	}
	o.mu.Unlock()
	o.wakeFlusher()
	return results
}

// result waits for an Append's outcome.
func result(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: Append has not returned", what)
		return nil
	}
}

// stillWaiting asserts that no Append in chs has returned.
func stillWaiting(t *testing.T, chs []chan error, what string) {
	t.Helper()
	for i, ch := range chs {
		select {
		case err := <-ch:
			t.Fatalf("%s %d returned %v while the disk is full", what, i, err)
		default:
		}
	}
}

// event names one expected record: its type and testEvent number.
type event struct {
	typ presence.EventType
	n   int
}

func events(typ presence.EventType, from, count int) []event {
	var evs []event
	for i := from; i < from+count; i++ {
		evs = append(evs, event{typ, i})
	}
	return evs
}

// checkLog asserts that recs are exactly want, numbered from 1.
func checkLog(t *testing.T, recs []Record, want []event) {
	t.Helper()
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d", len(recs), len(want))
	}
	for i, rec := range recs {
		ev, err := rec.Event()
		if err != nil {
			t.Fatalf("record %d: %v", rec.Seq, err)
		}
		w := testEvent(want[i].typ, want[i].n)
		if rec.Seq != uint64(i+1) || ev.Type != w.Type || ev.ChannelID != w.ChannelID {
			t.Fatalf("record %d is seq %d %s %s, want seq %d %s %s", i, rec.Seq, ev.Type, ev.ChannelID, i+1, w.Type, w.ChannelID)
		}
	}
}

// tcpcleansFillingPages returns tcpclean events 100.. that together are
// bigger than two memory pages, so that on a full tmpfs they cannot fit
// in the slack of the segment's last page.
func tcpcleansFillingPages() []presence.Event {
	var evs []presence.Event
	for size := 0; size <= 2*os.Getpagesize(); {
		ev := testEvent(presence.EventTCPClean, 100+len(evs))
		payload, _ := json.Marshal(ev)
		size += recordHeaderBytes + 1 + len(payload)
		evs = append(evs, ev)
	}
	return evs
}

func TestLowDiskRefusesConnectsKeepsTCPClean(t *testing.T) {
	mnt := mountTmpfs(t, "16m")
	dir := filepath.Join(mnt, "outbox")
	clock := newFakeClock()
	const reserve = 4 << 20
	o := openOutbox(t, dir, Options{MinFreeBytes: reserve, now: clock.Now})
	ctx := context.Background()
	appendN(t, o, 0, 1)

	filler := fillDisk(t, mnt, reserve/2)
	clock.expire()
	err := o.Append(ctx, testEvent(presence.EventConnect, 1))
	if presence.ErrorCode(err) != presence.EOVERLOADED || !strings.Contains(err.Error(), dir) {
		t.Fatalf("connect with %d bytes free: %v, want EOVERLOADED naming %s", reserve/2, err, dir)
	}
	t.Log(err)
	if err := o.AppendNode(ctx, presence.NodeEvent{Node: "n", Epoch: "e", Type: presence.NodeHeartbeat, Time: 1}); presence.ErrorCode(err) != presence.EOVERLOADED {
		t.Fatalf("node event with the disk nearly full: %v, want EOVERLOADED", err)
	}
	if err := o.Append(ctx, testEvent(presence.EventTCPClean, 0)); err != nil {
		t.Fatalf("tcpclean with the disk nearly full: %v", err)
	}
	st := o.Stats()
	if !st.LowDisk || st.LowDiskRefused != 2 || st.Refused != 0 || st.DiskFree <= 0 || st.DiskFree >= reserve {
		t.Fatalf("stats with the disk nearly full: %+v", st)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	clock.expire()
	if err := o.Append(ctx, testEvent(presence.EventConnect, 2)); err != nil {
		t.Fatalf("connect after space returned: %v", err)
	}
	if st := o.Stats(); st.LowDisk || st.DiskFree < reserve {
		t.Fatalf("stats after space returned: %+v", st)
	}
	checkLog(t, readAll(t, o, 3, 10), []event{{presence.EventConnect, 0}, {presence.EventTCPClean, 0}, {presence.EventConnect, 2}})
}

func TestDiskGuardHysteresisWatchedDirsAndCaching(t *testing.T) {
	dir := t.TempDir()
	const watched = "/srv/presenced/postgres"
	var (
		mu    sync.Mutex
		free  = map[string]int64{dir: 1 << 30, watched: 1 << 30}
		calls atomic.Int64
	)
	freeSpace := func(path string) (int64, error) {
		calls.Add(1)
		mu.Lock()
		defer mu.Unlock()
		n, ok := free[path]
		if !ok {
			return 0, fmt.Errorf("unexpected path %s", path)
		}
		return n, nil
	}
	clock := newFakeClock()
	o := openOutbox(t, dir, Options{MinFreeBytes: 1000, WatchDirs: []string{watched}, now: clock.Now, freeSpace: freeSpace})

	steps := []struct {
		name          string
		outbox, watch int64
		refusedOn     string // "" when connects are accepted
	}{
		{"plenty", 1 << 30, 1 << 30, ""},
		{"outbox below the reserve", 999, 1 << 30, dir},
		{"above the reserve, below 1.25x", 1100, 1 << 30, dir},
		{"back at 1.25x", 1250, 1 << 30, ""},
		{"above the reserve again", 1100, 1 << 30, ""},
		{"watched dir below the reserve", 1100, 500, watched},
		{"both fine", 5000, 5000, ""},
	}
	n, refused := 0, 0
	for _, step := range steps {
		mu.Lock()
		free[dir], free[watched] = step.outbox, step.watch
		mu.Unlock()
		clock.expire()
		err := o.Append(context.Background(), testEvent(presence.EventConnect, n))
		n++
		switch {
		case step.refusedOn == "" && err != nil:
			t.Fatalf("%s: connect refused: %v", step.name, err)
		case step.refusedOn != "" && (presence.ErrorCode(err) != presence.EOVERLOADED || !strings.Contains(err.Error(), step.refusedOn)):
			t.Fatalf("%s: connect returned %v, want EOVERLOADED naming %s", step.name, err, step.refusedOn)
		case step.refusedOn != "":
			refused++
		}
		if st := o.Stats(); st.LowDisk != (step.refusedOn != "") || st.DiskFree != min(step.outbox, step.watch) {
			t.Fatalf("%s: stats %+v", step.name, st)
		}
		if err := o.Append(context.Background(), testEvent(presence.EventTCPClean, n)); err != nil {
			t.Fatalf("%s: tcpclean: %v", step.name, err)
		}
		n++
	}
	if st := o.Stats(); st.LowDiskRefused != uint64(refused) || st.Refused != 0 {
		t.Fatalf("stats: %+v, want %d refused for low disk", st, refused)
	}

	// Within diskCheckInterval the cached reading serves every append.
	before := calls.Load()
	appendN(t, o, n, 50)
	if got := calls.Load(); got != before {
		t.Fatalf("%d statfs calls for 50 appends within one interval, want 0", got-before)
	}
}

// A group write that hits ENOSPC refuses its connect, keeps its tcpcleans
// waiting and writes them when space returns, numbered as positions in the
// log; the outbox reopens with everything durable.
func TestFullDiskRefusesConnectAndRetriesTCPClean(t *testing.T) {
	mnt := mountTmpfs(t, "16m")
	dir := filepath.Join(mnt, "outbox")
	o := openOutbox(t, dir, Options{}) // no reserve: the disk itself says no
	ctx := context.Background()
	appendN(t, o, 0, 3)

	filler := fillDisk(t, mnt, 0)
	tcpcleans := tcpcleansFillingPages()
	results := enqueueGroup(t, o, append([]presence.Event{testEvent(presence.EventConnect, 3)}, tcpcleans...)...)
	if err := result(t, results[0], "connect in a group hitting ENOSPC"); presence.ErrorCode(err) != presence.EOVERLOADED {
		t.Fatalf("connect in a group hitting ENOSPC: %v, want EOVERLOADED", err)
	}
	waiting := results[1:]
	stillWaiting(t, waiting, "tcpclean")

	// While the group is retried, connects are refused at once and
	// tcpcleans queue behind it.
	if err := o.Append(ctx, testEvent(presence.EventConnect, 4)); presence.ErrorCode(err) != presence.EOVERLOADED {
		t.Fatalf("connect while the disk is full: %v, want EOVERLOADED", err)
	}
	if st := o.Stats(); !st.LowDisk || st.LowDiskRefused != 2 {
		t.Fatalf("stats while the disk is full: %+v", st)
	}
	after := enqueueGroup(t, o, testEvent(presence.EventTCPClean, 200))
	stillWaiting(t, waiting, "tcpclean")

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for i, ch := range append(waiting, after...) {
		if err := result(t, ch, "tcpclean"); err != nil {
			t.Fatalf("tcpclean %d after space returned: %v", i, err)
		}
	}
	appendN(t, o, 5, 2)

	want := events(presence.EventConnect, 0, 3)
	want = append(want, events(presence.EventTCPClean, 100, len(tcpcleans))...)
	want = append(want, event{presence.EventTCPClean, 200})
	want = append(want, events(presence.EventConnect, 5, 2)...)
	checkLog(t, readAll(t, o, len(want), 1000), want)
	if st := o.Stats(); st.LowDisk || st.Lost != 0 || st.DurableSeq != uint64(len(want)) {
		t.Fatalf("stats after space returned: %+v", st)
	}

	if err := o.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	o = openOutbox(t, dir, Options{})
	checkLog(t, readAll(t, o, len(want), 1000), want)
}

// Records queued behind a group that hit ENOSPC meet the same disk: the
// connects among them are refused at once too, and the groups behind a
// refused record are renumbered to fill its place.
func TestFullDiskRefusesConnectsQueuedBehind(t *testing.T) {
	mnt := mountTmpfs(t, "16m")
	dir := filepath.Join(mnt, "outbox")
	o := openOutbox(t, dir, Options{})
	appendN(t, o, 0, 2)
	var want [][]byte
	for i := range 2 {
		payload, _ := json.Marshal(testEvent(presence.EventConnect, i))
		want = append(want, payload)
	}
	filler := fillDisk(t, mnt, 0)

	// Group 1: a connect, then big tcpcleans until they spill into group
	// 2, which gets a connect and a small tcpclean more.
	type queued struct {
		g    *group
		must bool
	}
	var records []queued
	var connects []int // indexes in records
	enqueue := func(ev presence.Event) {
		payload, _ := json.Marshal(ev)
		must := alwaysAccepted(ev.Type)
		if must {
			want = append(want, payload)
		} else {
			connects = append(connects, len(records))
		}
		records = append(records, queued{o.enqueue(KindEvent, payload, must), must})
	}
	o.mu.Lock()
	enqueue(testEvent(presence.EventConnect, 2))
	for i := 0; len(o.groups) < 2; i++ {
		ev := testEvent(presence.EventTCPClean, 100+i)
		ev.Reason = presence.Reason(strings.Repeat("r", 100<<10))
		enqueue(ev)
	}
	enqueue(testEvent(presence.EventConnect, 3))
	enqueue(testEvent(presence.EventTCPClean, 3))
	groups := len(o.groups)
	o.mu.Unlock()
	if groups != 2 {
		t.Fatalf("%d groups queued, want 2", groups)
	}
	results := make([]chan error, len(records))
	var waiting []chan error
	for i, r := range records {
		results[i] = make(chan error, 1)
		go func() { results[i] <- r.g.wait(r.must) }()
		if r.must {
			waiting = append(waiting, results[i])
		}
	}
	o.wakeFlusher()

	for _, i := range connects {
		if err := result(t, results[i], "connect"); presence.ErrorCode(err) != presence.EOVERLOADED {
			t.Fatalf("connect %d in groups hitting ENOSPC: %v, want EOVERLOADED", i, err)
		}
	}
	stillWaiting(t, waiting, "tcpclean")
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for i, ch := range waiting {
		if err := result(t, ch, "tcpclean"); err != nil {
			t.Fatalf("tcpclean %d after space returned: %v", i, err)
		}
	}
	if st := o.Stats(); st.DurableSeq != uint64(len(want)) {
		t.Fatalf("DurableSeq %d once the tcpcleans are written, want %d", st.DurableSeq, len(want))
	}
	// The next append follows on directly.
	appendN(t, o, 4, 1)
	payload, _ := json.Marshal(testEvent(presence.EventConnect, 4))
	want = append(want, payload)
	checkPayloads(t, o, want)
	if err := o.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	o = openOutbox(t, dir, Options{})
	checkPayloads(t, o, want)
}

// checkPayloads asserts that o holds exactly want, numbered from 1.
func checkPayloads(t *testing.T, o *Outbox, want [][]byte) {
	t.Helper()
	if st := o.Stats(); st.DurableSeq != uint64(len(want)) {
		t.Fatalf("DurableSeq %d, want %d", st.DurableSeq, len(want))
	}
	recs := readAll(t, o, len(want), 1000)
	for i, rec := range recs {
		if rec.Seq != uint64(i+1) || !bytes.Equal(rec.Payload, want[i]) {
			t.Fatalf("record %d is seq %d %.80s, want seq %d %.80s", i, rec.Seq, rec.Payload, i+1, want[i])
		}
	}
}

// Close while tcpcleans cannot be written returns within CloseWait and
// says how many were lost.
func TestCloseWhileDiskFullCountsLostEvents(t *testing.T) {
	mnt := mountTmpfs(t, "16m")
	dir := filepath.Join(mnt, "outbox")
	o := openOutbox(t, dir, Options{CloseWait: 50 * time.Millisecond})
	appendN(t, o, 0, 2)

	filler := fillDisk(t, mnt, 0)
	tcpcleans := tcpcleansFillingPages()
	results := enqueueGroup(t, o, append([]presence.Event{testEvent(presence.EventConnect, 2)}, tcpcleans...)...)
	// The connect's refusal says the group was tried and is now retried.
	if err := result(t, results[0], "connect"); presence.ErrorCode(err) != presence.EOVERLOADED {
		t.Fatalf("connect in a group hitting ENOSPC: %v, want EOVERLOADED", err)
	}

	closed := make(chan error, 1)
	go func() { closed <- o.Close() }()
	err := result(t, closed, "Close with the disk full")
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%d disconnect/tcpclean events", len(tcpcleans))) {
		t.Fatalf("Close with %d tcpcleans not durable: %v", len(tcpcleans), err)
	}
	t.Log(err)
	if st := o.Stats(); st.Lost != uint64(len(tcpcleans)) {
		t.Fatalf("Stats.Lost = %d, want %d", st.Lost, len(tcpcleans))
	}
	for i, ch := range results[1:] {
		if err := result(t, ch, "tcpclean"); !errors.Is(err, ErrClosed) {
			t.Fatalf("tcpclean %d given up by Close: %v, want ErrClosed", i, err)
		}
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	o = openOutbox(t, dir, Options{})
	if st := o.Stats(); st.DurableSeq != 2 {
		t.Fatalf("DurableSeq %d after reopening, want the 2 records written before", st.DurableSeq)
	}
	appendN(t, o, 3, 1)
	checkLog(t, readAll(t, o, 3, 10), []event{{presence.EventConnect, 0}, {presence.EventConnect, 1}, {presence.EventConnect, 3}})
}

// ENOSPC from fdatasync is handled like a failed write; any other fsync
// error makes the outbox unusable and loses the group's tcpcleans.
func TestSyncErrors(t *testing.T) {
	cases := []struct {
		errno       syscall.Errno
		connectCode string
		tcpcleanOK  bool
	}{
		{syscall.ENOSPC, presence.EOVERLOADED, true},
		{syscall.EIO, presence.EUNAVAILABLE, false},
	}
	for _, tc := range cases {
		t.Run(tc.errno.Error(), func(t *testing.T) {
			var failures atomic.Int32
			syncData := func(f *os.File) error {
				if failures.Add(-1) >= 0 {
					return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: tc.errno}
				}
				return durable.SyncFile(f)
			}
			o := openOutbox(t, t.TempDir(), Options{syncData: syncData})
			appendN(t, o, 0, 2)

			failures.Store(1)
			results := enqueueGroup(t, o, testEvent(presence.EventConnect, 2), testEvent(presence.EventTCPClean, 2))
			if err := result(t, results[0], "connect"); presence.ErrorCode(err) != tc.connectCode {
				t.Fatalf("connect in a group whose fsync failed: %v, want %s", err, tc.connectCode)
			}
			err := result(t, results[1], "tcpclean")
			next := o.Append(context.Background(), testEvent(presence.EventConnect, 3))
			if tc.tcpcleanOK {
				if err != nil || next != nil {
					t.Fatalf("after ENOSPC from fsync: tcpclean %v, next connect %v; want both durable", err, next)
				}
				want := append(events(presence.EventConnect, 0, 2), event{presence.EventTCPClean, 2}, event{presence.EventConnect, 3})
				checkLog(t, readAll(t, o, len(want), 10), want)
				if err := o.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				return
			}
			if presence.ErrorCode(err) != presence.EUNAVAILABLE || presence.ErrorCode(next) != presence.EUNAVAILABLE {
				t.Fatalf("after EIO from fsync: tcpclean %v, next connect %v; want EUNAVAILABLE", err, next)
			}
			if st := o.Stats(); st.Lost != 1 {
				t.Fatalf("Stats.Lost = %d after losing one tcpclean", st.Lost)
			}
			if err := o.Close(); err == nil || !strings.Contains(err.Error(), "1 disconnect/tcpclean") {
				t.Fatalf("Close after losing a tcpclean: %v", err)
			}
		})
	}
}

// Filled to the last byte by someone else, the disk has no room even for
// tcpcleans: the outbox gives up its emergency space for them at once, and
// sets it aside again once the disk has room.
func TestEmergencySpaceTakesTCPCleansOnAFullDisk(t *testing.T) {
	mnt := mountTmpfs(t, "32m")
	dir := filepath.Join(mnt, "outbox")
	const emergency = 4 << 20
	o := openOutbox(t, dir, Options{MinFreeBytes: 2 << 20, EmergencyBytes: emergency})
	ballastPath := filepath.Join(dir, ballastName)
	if info, err := os.Stat(ballastPath); err != nil || info.Size() != emergency {
		t.Fatalf("emergency space after Open: %v %v, want a file of %d bytes", info, err, emergency)
	}
	ctx := context.Background()
	appendN(t, o, 0, 1)

	filler := fillDisk(t, mnt, 0)
	// More than the partly filled last page can take.
	tcpcleans := tcpcleansFillingPages()
	for i, ch := range enqueueGroup(t, o, tcpcleans...) {
		if err := result(t, ch, "tcpclean on a full disk"); err != nil {
			t.Fatalf("tcpclean %d on a disk filled to the last byte: %v, want it written into the emergency space", i, err)
		}
	}
	if _, err := os.Stat(ballastPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("emergency space still set aside after it was needed: %v", err)
	}
	if err := o.Append(ctx, testEvent(presence.EventConnect, 1)); presence.ErrorCode(err) != presence.EOVERLOADED {
		t.Fatalf("connect on a full disk: %v, want EOVERLOADED", err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for i := 2; ; i++ {
		_ = o.Append(ctx, testEvent(presence.EventConnect, i)) // refused until the guard sees the space
		if info, err := os.Stat(ballastPath); err == nil && info.Size() == emergency {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("emergency space not set aside again within 20s of the disk having room")
		}
		time.Sleep(20 * time.Millisecond)
	}
	want := append(events(presence.EventConnect, 0, 1), events(presence.EventTCPClean, 100, len(tcpcleans))...)
	checkLog(t, readAll(t, o, len(want), 1000)[:len(want)], want)
}
