package rocketmqfake_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/presenced/presenced/test/rocketmqfake"
)

// TestTwoConsumersSplitQueues: two consumers of one group split the
// topic's queues (the fake pushes NOTIFY_CONSUMER_IDS_CHANGED, so nobody
// waits for the 20 s rebalance timer) and between them consume everything
// exactly once. When one leaves, the other takes over its queues from the
// committed offsets.
func TestTwoConsumersSplitQueues(t *testing.T) {
	t.Parallel()
	f := startFake(t, rocketmqfake.Options{})
	const topic, group = "split", "split-group"
	c1, rec1 := startConsumer(t, f, group, topic, presenceTags, nil)
	c2, rec2 := startConsumer(t, f, group, topic, presenceTags, nil)
	_ = c1
	ctx, cancel := contextTimeout(5 * time.Second)
	defer cancel()
	if err := rocketmqfake.WaitFor(ctx, func() bool { return len(f.ConsumerIDs(group)) == 2 }); err != nil {
		t.Fatalf("consumer ids %v", f.ConsumerIDs(group))
	}
	// The rebalance triggered by the notification takes milliseconds; give
	// it a comfortable margin before producing.
	time.Sleep(time.Second)

	p := newProducer(t, f)
	const n = 40
	for i := 0; i < n; i++ {
		sendSync(t, p, newMsg(topic, eventTypes[i%3], "", fmt.Sprintf("m%02d", i)))
	}
	waitUnion(t, n, 10*time.Second, rec1, rec2)
	time.Sleep(300 * time.Millisecond)
	_, by1 := rec1.snapshot()
	_, by2 := rec2.snapshot()
	if len(by1) == 0 || len(by2) == 0 {
		t.Fatalf("one consumer got nothing: %d / %d", len(by1), len(by2))
	}
	for i := 0; i < n; i++ {
		b := fmt.Sprintf("m%02d", i)
		if by1[b]+by2[b] != 1 {
			t.Errorf("%s delivered %d+%d times", b, by1[b], by2[b])
		}
	}
	t.Logf("split: consumer 1 got %d, consumer 2 got %d", len(by1), len(by2))

	// Consumer 2 leaves: consumer 1 is notified and takes its queues over.
	rec2.settle(t, len(by2))
	left := time.Now()
	if err := c2.Shutdown(); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := contextTimeout(5 * time.Second)
	defer cancel2()
	if err := rocketmqfake.WaitFor(ctx2, func() bool { return len(f.ConsumerIDs(group)) == 1 }); err != nil {
		t.Fatalf("consumer ids after shutdown %v", f.ConsumerIDs(group))
	}
	for i := n; i < n+20; i++ {
		sendSync(t, p, newMsg(topic, eventTypes[i%3], "", fmt.Sprintf("m%02d", i)))
	}
	rec1.waitDistinct(t, len(by1)+20, 10*time.Second)
	t.Logf("takeover: all 20 new messages at consumer 1 %v after consumer 2 left", time.Since(left))
	time.Sleep(300 * time.Millisecond)
	_, after1 := rec1.snapshot()
	_, after2 := rec2.snapshot()
	for i := 0; i < n+20; i++ {
		b := fmt.Sprintf("m%02d", i)
		if after1[b]+after2[b] != 1 {
			t.Errorf("%s delivered %d+%d times", b, after1[b], after2[b])
		}
	}
}

// TestOffsetsSurviveConsumerRestart: a consumer that shut down gracefully
// committed its offsets; a new consumer of the group (new instance) starts
// from them and sees only what was produced after.
func TestOffsetsSurviveConsumerRestart(t *testing.T) {
	t.Parallel()
	f := startFake(t, rocketmqfake.Options{})
	const topic, group = "restart", "restart-group"
	c1, rec1 := startConsumer(t, f, group, topic, presenceTags, nil)
	p := newProducer(t, f)
	for i := 0; i < 12; i++ {
		sendSync(t, p, newMsg(topic, "connect", "", fmt.Sprintf("old%02d", i)))
	}
	rec1.waitDistinct(t, 12, 10*time.Second)
	rec1.settle(t, 12)
	if err := c1.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := waitOffsets(f, group, topic, 12, 5*time.Second); err != nil {
		t.Fatalf("offsets after shutdown %v", f.Offsets(group, topic))
	}
	for i := 0; i < 8; i++ {
		sendSync(t, p, newMsg(topic, "tcpclean", "", fmt.Sprintf("new%02d", i)))
	}
	start := time.Now()
	_, rec2 := startConsumer(t, f, group, topic, presenceTags, nil)
	rec2.waitDistinct(t, 8, 10*time.Second)
	t.Logf("restarted consumer had the 8 new messages after %v", time.Since(start))
	time.Sleep(300 * time.Millisecond)
	_, by := rec2.snapshot()
	for b, n := range by {
		if b[:3] != "new" || n != 1 {
			t.Errorf("restarted consumer got %s %d times", b, n)
		}
	}
}

// waitUnion waits until the receivers together saw n distinct bodies.
func waitUnion(t *testing.T, n int, d time.Duration, recs ...*received) {
	t.Helper()
	ctx, cancel := contextTimeout(d)
	defer cancel()
	union := func() int {
		all := map[string]bool{}
		for _, r := range recs {
			_, by := r.snapshot()
			for b := range by {
				all[b] = true
			}
		}
		return len(all)
	}
	if err := rocketmqfake.WaitFor(ctx, func() bool { return union() >= n }); err != nil {
		t.Fatalf("received %d distinct, want %d", union(), n)
	}
}
