package rocketmqfake_test

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/presenced/presenced/test/rocketmqfake"
)

var eventTypes = []string{"connect", "disconnect", "tcpclean"}

// TestSendConsume: what the producer sends is exactly what the push consumer
// gets — body, tag, keys, message id — and the committed offsets cover it.
func TestSendConsume(t *testing.T) {
	t.Parallel()
	f := startFake(t, rocketmqfake.Options{})
	const topic, group, n = "GID_demo_MQTT", "presenced-consumer", 30

	start := time.Now()
	c, rec := startConsumer(t, f, group, topic, presenceTags, nil)
	t.Logf("consumer started in %v", time.Since(start))

	p := newProducer(t, f)
	sent := map[string]*primitive.SendResult{}
	sendStart := time.Now()
	var firstSeen time.Duration
	for i := 0; i < n; i++ {
		body := fmt.Sprintf(`{"clientId":"GID_demo@@@dev-%d","eventType":"%s"}`, i, eventTypes[i%3])
		res := sendSync(t, p, newMsg(topic, eventTypes[i%3], fmt.Sprintf("chan-%02d", i), body))
		sent[body] = res
		if i == 0 {
			rec.waitDistinct(t, 1, 10*time.Second)
			firstSeen = time.Since(sendStart)
		}
	}
	t.Logf("first message consumed %v after its send; consumer start to first message %v", firstSeen, time.Since(start))
	rec.waitDistinct(t, n, 10*time.Second)

	msgs, by := rec.snapshot()
	for body, res := range sent {
		if by[body] != 1 {
			t.Errorf("body %s delivered %d times", body, by[body])
		}
		_ = res
	}
	for _, m := range msgs {
		res := sent[string(m.Body)]
		if res == nil {
			t.Fatalf("unexpected message %s", m.Body)
		}
		if m.MsgId != res.MsgID {
			t.Errorf("MsgId %s, SendResult.MsgID %s", m.MsgId, res.MsgID)
		}
		if m.OffsetMsgId != res.OffsetMsgID {
			t.Errorf("OffsetMsgId %s, SendResult.OffsetMsgID %s", m.OffsetMsgId, res.OffsetMsgID)
		}
		if m.Queue.QueueId != res.MessageQueue.QueueId || m.QueueOffset != res.QueueOffset {
			t.Errorf("queue %d/%d, sent to %d/%d", m.Queue.QueueId, m.QueueOffset, res.MessageQueue.QueueId, res.QueueOffset)
		}
		if !strings.Contains(string(m.Body), `"eventType":"`+m.GetTags()+`"`) {
			t.Errorf("tag %q does not match body %s", m.GetTags(), m.Body)
		}
		if !strings.HasPrefix(m.GetKeys(), "chan-") {
			t.Errorf("keys %q", m.GetKeys())
		}
		if m.Topic != topic || m.ReconsumeTimes != 0 || m.BornHost == "" || m.StoreHost != f.BrokerAddr() {
			t.Errorf("message %+v", m)
		}
	}

	stored := f.Messages(topic)
	if len(stored) != n {
		t.Fatalf("fake holds %d messages, want %d", len(stored), n)
	}
	for _, m := range stored {
		if sent[string(m.Body)] == nil || len(m.Keys) != 1 || m.Tags == "" || m.MsgID != sent[string(m.Body)].MsgID {
			t.Errorf("stored %+v", m)
		}
	}
	if got := f.SendCount(); got != n {
		t.Errorf("SendCount %d, want %d", got, n)
	}

	// A graceful shutdown persists the offsets (UPDATE_CONSUMER_OFFSET is
	// fire-and-forget, so poll for it): they must cover everything.
	rec.settle(t, n)
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := waitOffsets(f, group, topic, n, 5*time.Second); err != nil {
		t.Errorf("committed offsets %v, want a total of %d", f.Offsets(group, topic), n)
	}
}

// TestTagFilter: only subscribed tags are delivered; untagged and other
// tags are not, on the broker side as well as the client side.
func TestTagFilter(t *testing.T) {
	t.Parallel()
	f := startFake(t, rocketmqfake.Options{})
	const topic, group = "filtered", "filter-group"
	_, rec := startConsumer(t, f, group, topic, "connect || tcpclean", nil)
	p := newProducer(t, f)
	want := []string{}
	for i, tag := range []string{"connect", "other", "", "tcpclean", "disconnect", "connect"} {
		body := fmt.Sprintf("%d-%s", i, tag)
		sendSync(t, p, newMsg(topic, tag, "", body))
		if tag == "connect" || tag == "tcpclean" {
			want = append(want, body)
		}
	}
	// A marker after everything: once it is in, nothing else can still come.
	sendSync(t, p, newMsg(topic, "connect", "", "marker"))
	want = append(want, "marker")
	rec.waitDistinct(t, len(want), 10*time.Second)
	time.Sleep(200 * time.Millisecond)
	_, by := rec.snapshot()
	var got []string
	for b := range by {
		got = append(got, b)
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("got %v, want %v", got, want)
	}
	if n := len(f.Messages(topic)); n != 7 {
		t.Fatalf("fake holds %d, want 7", n)
	}
	if expr, _ := f.Subscription(group, topic); expr != "connect || tcpclean" {
		t.Errorf("subscription %q", expr)
	}
	if expr, _ := f.Subscription(group, "%RETRY%"+group); expr != "*" {
		t.Errorf("retry subscription %q", expr)
	}
}

// TestDelayLevels: a message sent with a delay level becomes visible after
// Options.DelayLevels[level-1].
func TestDelayLevels(t *testing.T) {
	t.Parallel()
	f := startFake(t, rocketmqfake.Options{DelayLevels: []time.Duration{400 * time.Millisecond}})
	const topic = "delayed"
	_, rec := startConsumer(t, f, "delay-group", topic, "*", nil)
	p := newProducer(t, f)
	start := time.Now()
	m := newMsg(topic, "connect", "", "later")
	m.WithDelayTimeLevel(1)
	sendSync(t, p, m)
	if n := len(f.Messages(topic)); n != 0 {
		t.Errorf("delayed message visible at once (%d)", n)
	}
	rec.waitDistinct(t, 1, 5*time.Second)
	if took := time.Since(start); took < 400*time.Millisecond {
		t.Errorf("delayed message consumed after %v", took)
	}
	if got := f.Messages(topic)[0].Properties["REAL_TOPIC"]; got != topic {
		t.Errorf("REAL_TOPIC %q", got)
	}
}

// TestBatchAndCompression: a batch SendSync stores every message, and a
// body over the producer's 4 KiB compression threshold is stored compressed
// but inspected and consumed as sent.
func TestBatchAndCompression(t *testing.T) {
	t.Parallel()
	f := startFake(t, rocketmqfake.Options{})
	const topic = "batch"
	_, rec := startConsumer(t, f, "batch-group", topic, "*", nil)
	p := newProducer(t, f)
	res := sendSync(t, p, newMsg(topic, "connect", "k1", "b1"), newMsg(topic, "connect", "k2", "b2"), newMsg(topic, "tcpclean", "k3", "b3"))
	if ids := strings.Split(res.OffsetMsgID, ","); len(ids) != 3 {
		t.Errorf("batch OffsetMsgID %q", res.OffsetMsgID)
	}
	big := strings.Repeat("x", 10000)
	sendSync(t, p, newMsg(topic, "connect", "big", big))
	rec.waitDistinct(t, 4, 10*time.Second)
	stored := f.Messages(topic)
	if len(stored) != 4 {
		t.Fatalf("stored %d", len(stored))
	}
	for i, m := range stored[:3] {
		if string(m.Body) != fmt.Sprintf("b%d", i+1) || m.Keys[0] != fmt.Sprintf("k%d", i+1) || m.QueueOffset != int64(i) {
			t.Errorf("batch message %d: %+v", i, m)
		}
	}
	if string(stored[3].Body) != big || stored[3].SysFlag&1 == 0 {
		t.Errorf("compressed message: sysFlag %d, body length %d", stored[3].SysFlag, len(stored[3].Body))
	}
	_, by := rec.snapshot()
	if by[big] != 1 {
		t.Errorf("big body delivered %d times", by[big])
	}
}

// TestRetryAndDLQ: ConsumeRetryLater sends the message to %RETRY%<group>,
// from where it comes back with ReconsumeTimes+1 under its original topic;
// after maxReconsumeTimes it lands in %DLQ%<group>.
func TestRetryAndDLQ(t *testing.T) {
	t.Parallel()
	f := startFake(t, rocketmqfake.Options{})
	const topic, group = "retry-topic", "retry-group"
	// Callbacks run concurrently (several batches of one queue at once).
	var mu sync.Mutex
	attempts := map[string][]int32{}
	handler := func(msgs []*primitive.MessageExt) consumer.ConsumeResult {
		mu.Lock()
		defer mu.Unlock()
		result := consumer.ConsumeSuccess
		for _, m := range msgs {
			b := string(m.Body)
			attempts[b] = append(attempts[b], m.ReconsumeTimes)
			if m.Topic != topic {
				t.Errorf("delivered under topic %q", m.Topic)
			}
			switch {
			case b == "poison":
				result = consumer.ConsumeRetryLater
			case b == "flaky" && m.ReconsumeTimes == 0:
				result = consumer.ConsumeRetryLater
			}
		}
		return result
	}
	_, rec := startConsumer(t, f, group, topic, presenceTags, handler,
		consumer.WithMaxReconsumeTimes(2), consumer.WithConsumeMessageBatchMaxSize(1))
	p := newProducer(t, f)
	sendSync(t, p, newMsg(topic, "connect", "c-flaky", "flaky"))
	sendSync(t, p, newMsg(topic, "tcpclean", "c-poison", "poison"))
	poisonID := f.Messages(topic)[1].MsgID

	ctx, cancel := contextTimeout(15 * time.Second)
	defer cancel()
	dlq, err := f.WaitMessages(ctx, "%DLQ%"+group, 1)
	if err != nil {
		t.Fatalf("DLQ: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	_, by := rec.snapshot()
	mu.Lock()
	if by["flaky"] != 2 || by["poison"] != 3 ||
		fmt.Sprint(attempts["flaky"]) != "[0 1]" || fmt.Sprint(attempts["poison"]) != "[0 1 2]" {
		t.Errorf("deliveries: %v (reconsume times %v)", by, attempts)
	}
	mu.Unlock()
	d := dlq[0]
	if string(d.Body) != "poison" || d.ReconsumeTimes != 3 || d.Tags != "tcpclean" || d.Keys[0] != "c-poison" ||
		d.OriginalTopic() != topic || d.MsgID != poisonID || d.Properties["ORIGIN_MESSAGE_ID"] == "" {
		t.Errorf("DLQ message %+v", d)
	}
	if retries := f.RetryMessages(group); len(retries) != 3 { // flaky once, poison twice
		t.Errorf("%d retry messages, want 3", len(retries))
	}
}
