package rocketmqfake_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"

	"github.com/presenced/presenced/test/rocketmqfake"
)

// TestOrderlyConsumer: an orderly consumer locks its queues
// (LOCK_BATCH_MQ) and gets each queue's messages in queue order.
func TestOrderlyConsumer(t *testing.T) {
	t.Parallel()
	f := startFake(t, rocketmqfake.Options{Queues: 2})
	const topic, group = "ordered", "ordered-group"
	start := time.Now()
	c, rec := startConsumer(t, f, group, topic, presenceTags, nil, consumer.WithConsumerOrder(true))
	p := newProducer(t, f)
	for i := 0; i < 10; i++ {
		sendSync(t, p, newMsg(topic, "connect", "", fmt.Sprintf("o%02d", i)))
	}
	rec.waitDistinct(t, 10, 15*time.Second)
	t.Logf("orderly consumer had all messages %v after Start", time.Since(start))
	msgs, _ := rec.snapshot()
	last := map[int]int64{0: -1, 1: -1}
	for _, m := range msgs {
		if m.QueueOffset <= last[m.Queue.QueueId] {
			t.Errorf("queue %d: offset %d after %d", m.Queue.QueueId, m.QueueOffset, last[m.Queue.QueueId])
		}
		last[m.Queue.QueueId] = m.QueueOffset
	}
	if f.RequestCount(rocketmqfake.ReqLockBatchMQ) == 0 {
		t.Error("no LOCK_BATCH_MQ")
	}
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
}
