package rocketmq

import (
	"hash/fnv"
	"sync"
	"sync/atomic"

	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// Every event of one channel goes to one message queue. The consumer then
// usually finds a channel's connect, disconnect and tcpclean in the same
// batch, and the store writes the channel's row once instead of inserting
// it and updating it twice (a channels update rewrites every index entry of
// the row: it made up half of the store's writes when the events of a
// channel were spread over queues).
//
// rocketmq-client-go picks the queue of a batch request once, for the
// whole batch, and its hash selector only sees the batch (which has no
// sharding key), so batches landed on random queues. The forwarder
// therefore splits a window into one batch per queue itself, using the
// queue count this selector last saw for the topic, and marks each batch
// with its queue; the selector sends it there.
type channelQueueSelector struct {
	mu sync.Mutex
	// queueCounts is the number of queues the producer last offered for
	// each topic, learnt on every Select.
	queueCounts map[string]int
	roundRobin  atomic.Uint64
}

func newChannelQueueSelector() *channelQueueSelector {
	return &channelQueueSelector{queueCounts: map[string]int{}}
}

// Select implements producer.QueueSelector: a batch the forwarder marked
// goes to the queue it was built for; a single message goes to the queue
// of its sharding key (the channel id); anything else round-robin.
func (s *channelQueueSelector) Select(msg *primitive.Message, queues []*primitive.MessageQueue, _ string) *primitive.MessageQueue {
	if len(queues) == 0 {
		return nil
	}
	s.learn(msg.Topic, len(queues))
	switch {
	case msg.Batch && msg.Queue != nil:
		return queues[msg.Queue.QueueId%len(queues)]
	case msg.GetShardingKey() != "":
		return queues[queueIndex(msg.GetShardingKey(), len(queues))]
	}
	return queues[s.roundRobin.Add(1)%uint64(len(queues))]
}

func (s *channelQueueSelector) learn(topic string, n int) {
	s.mu.Lock()
	s.queueCounts[topic] = n
	s.mu.Unlock()
}

// queueCount is the number of queues last seen for topic, 0 before the
// first send to it.
func (s *channelQueueSelector) queueCount(topic string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queueCounts[topic]
}

// queueIndex is the queue of a sharding key among n (FNV-1a, as the
// client's own hash selector).
func queueIndex(key string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

// byQueue splits msgs (one topic) into one batch per queue among n,
// keeping their order within each batch, and marks each batch with its
// queue for channelQueueSelector. With n unknown (0) or 1 it returns msgs
// as one unmarked batch.
func byQueue(msgs []*primitive.Message, n int) [][]*primitive.Message {
	if n <= 1 || len(msgs) <= 1 {
		return [][]*primitive.Message{msgs}
	}
	buckets := make([][]*primitive.Message, n)
	for _, m := range msgs {
		i := 0
		if key := m.GetShardingKey(); key != "" {
			i = queueIndex(key, n)
		}
		buckets[i] = append(buckets[i], m)
	}
	groups := buckets[:0]
	for i, b := range buckets {
		if len(b) == 0 {
			continue
		}
		// Only the first message's Queue is carried into the batch
		// request (and read by the selector); it is a hint, not a
		// manual queue choice, and single messages ignore it.
		b[0].Queue = &primitive.MessageQueue{Topic: b[0].Topic, QueueId: i}
		groups = append(groups, b)
	}
	return groups
}
