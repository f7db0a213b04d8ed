package rocketmqfake_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/presenced/presenced/test/rocketmqfake"
)

// sendUntilOK retries SendSync (the way an outbox relay would) until it
// succeeds or d passes, returning the number of failed attempts.
func sendUntilOK(t *testing.T, p rocketmqProducer, msg *primitive.Message, d time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(d)
	failures := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := p.SendSync(ctx, msg)
		cancel()
		if err == nil {
			return failures
		}
		failures++
		if time.Now().After(deadline) {
			t.Fatalf("SendSync still failing after %v: %v", d, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestStopStart: the fake goes away (connections closed, port refusing)
// and comes back on the same ports; the same producer and consumer carry
// on without being recreated.
func TestStopStart(t *testing.T) {
	t.Parallel()
	f := startFake(t, rocketmqfake.Options{})
	const topic, group = "outage", "outage-group"
	_, rec := startConsumer(t, f, group, topic, presenceTags, nil)
	p := newProducer(t, f)
	sendSync(t, p, newMsg(topic, "connect", "", "before"))
	rec.waitDistinct(t, 1, 10*time.Second)
	ns, br := f.NamesrvAddr(), f.BrokerAddr()

	f.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err := p.SendSync(ctx, newMsg(topic, "connect", "", "during"))
	cancel()
	if err == nil {
		t.Fatal("SendSync succeeded while the fake was stopped")
	}
	t.Logf("SendSync while stopped: %v", err)
	time.Sleep(2 * time.Second)
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	if f.NamesrvAddr() != ns || f.BrokerAddr() != br {
		t.Fatalf("addresses changed: %s %s -> %s %s", ns, br, f.NamesrvAddr(), f.BrokerAddr())
	}
	back := time.Now()
	failures := sendUntilOK(t, p, newMsg(topic, "tcpclean", "", "after"), 10*time.Second)
	t.Logf("producer: first send after restart ok after %d failures, %v", failures, time.Since(back))
	rec.waitDistinct(t, 2, 15*time.Second)
	t.Logf("consumer: message sent after restart consumed %v after Start", time.Since(back))
	_, by := rec.snapshot()
	if by["before"] != 1 || by["after"] != 1 || by["during"] != 0 {
		t.Errorf("deliveries %v", by)
	}
}

// TestUnreachable: a network partition (no answers, connections stay
// open) of a couple of seconds: a SendSync issued during it is answered
// once the partition heals, within the client's 3 s send timeout, and the
// consumer carries on.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	f := startFake(t, rocketmqfake.Options{})
	const topic, group = "partition", "partition-group"
	_, rec := startConsumer(t, f, group, topic, presenceTags, nil)
	p := newProducer(t, f)
	sendSync(t, p, newMsg(topic, "connect", "", "before"))
	rec.waitDistinct(t, 1, 10*time.Second)

	f.UnreachableFor(1500 * time.Millisecond)
	start := time.Now()
	failures := sendUntilOK(t, p, newMsg(topic, "disconnect", "", "during"), 15*time.Second)
	took := time.Since(start)
	t.Logf("SendSync during partition: %d failures, done after %v", failures, took)
	if took < time.Second {
		t.Errorf("send completed in %v although the fake was unreachable", took)
	}
	rec.waitDistinct(t, 2, 15*time.Second)
	if f.Paused() {
		t.Error("still paused")
	}
}

// TestInjectedErrors: error codes the producer retries by itself
// (SERVICE_NOT_AVAILABLE) and ones it does not (SYSTEM_BUSY), a delay, and
// a dropped request.
func TestInjectedErrors(t *testing.T) {
	t.Parallel()
	f := startFake(t, rocketmqfake.Options{})
	const topic = "faults"
	p := newProducer(t, f)
	sendSync(t, p, newMsg(topic, "connect", "", "warmup"))
	sends := func() int { return f.RequestCount(rocketmqfake.ReqSendMessage) }

	// Retried inside SendSync (client RetryTimes=2: three attempts).
	before := sends()
	f.Inject(rocketmqfake.Fault{Target: rocketmqfake.Broker, Codes: []int16{rocketmqfake.ReqSendMessage},
		Error: rocketmqfake.ResServiceNotAvailable, Times: 2})
	sendSync(t, p, newMsg(topic, "connect", "", "retried"))
	if got := sends() - before; got != 3 {
		t.Errorf("%d SEND_MESSAGE requests for one SendSync, want 3", got)
	}

	// Not retried: surfaces as an error.
	id := f.Inject(rocketmqfake.Fault{Codes: []int16{rocketmqfake.ReqSendMessage}, Error: rocketmqfake.ResSystemBusy})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err := p.SendSync(ctx, newMsg(topic, "connect", "", "busy"))
	cancel()
	if err == nil || !strings.Contains(err.Error(), "CODE: 2") {
		t.Errorf("SendSync with SYSTEM_BUSY: %v", err)
	}
	f.ClearFault(id)

	// Delay.
	f.Inject(rocketmqfake.Fault{Codes: []int16{rocketmqfake.ReqSendMessage}, Delay: 400 * time.Millisecond, Times: 1})
	start := time.Now()
	sendSync(t, p, newMsg(topic, "connect", "", "delayed"))
	if took := time.Since(start); took < 400*time.Millisecond {
		t.Errorf("delayed send took %v", took)
	}

	// Dropped: the first attempt times out (3 s), the retry succeeds.
	f.Inject(rocketmqfake.Fault{Codes: []int16{rocketmqfake.ReqSendMessage}, Drop: true, Times: 1})
	start = time.Now()
	sendSync(t, p, newMsg(topic, "connect", "", "dropped-once"))
	t.Logf("send with one dropped attempt took %v", time.Since(start))

	var bodies []string
	for _, m := range f.Messages(topic) {
		bodies = append(bodies, string(m.Body))
	}
	if got := strings.Join(bodies, ","); got != "warmup,retried,delayed,dropped-once" {
		t.Errorf("stored %s", got)
	}
	if f.SendCount() != 4 {
		t.Errorf("SendCount %d", f.SendCount())
	}
}

// TestDropAndRefuse: connections cut while the listeners refuse new ones,
// then everything reopens; the consumer resumes. This is the slow path of
// rocketmq-client-go: a long-polling pull cut without an answer is only
// given up after its 30 s timeout, so this test is skipped with -short.
func TestDropAndRefuse(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out rocketmq-client-go's 30 s pull timeout")
	}
	t.Parallel()
	f := startFake(t, rocketmqfake.Options{Queues: 1})
	const topic, group = "dropped", "dropped-group"
	_, rec := startConsumer(t, f, group, topic, presenceTags, nil)
	p := newProducer(t, f)
	sendSync(t, p, newMsg(topic, "connect", "", "before"))
	rec.waitDistinct(t, 1, 10*time.Second)
	time.Sleep(200 * time.Millisecond) // let the next long-poll park

	if err := f.RefuseConnections(true); err != nil {
		t.Fatal(err)
	}
	f.DropConnections()
	if n := f.Connections(); n != 0 {
		t.Errorf("%d connections after DropConnections", n)
	}
	time.Sleep(time.Second)
	if err := f.RefuseConnections(false); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	sendUntilOK(t, p, newMsg(topic, "tcpclean", "", "after"), 10*time.Second)
	rec.waitDistinct(t, 2, 40*time.Second)
	t.Logf("consumer resumed %v after the listeners reopened", time.Since(back))
	if ids := f.ConsumerIDs(group); len(ids) != 1 {
		t.Errorf("consumer ids %v", ids)
	}
}
