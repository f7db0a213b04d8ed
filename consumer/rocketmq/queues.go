package rocketmq

import (
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
// with its queue (batchMessage); the selector sends it there.
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
	case msg.Batch && msg.Queue != nil && msg.Queue.QueueId >= 0:
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

// queueIndex is the queue of a sharding key among n: 32-bit FNV-1a, as the
// client's own hash selector, computed in place (the forwarder hashes
// every event it sends; hash/fnv would allocate for each).
func queueIndex(key string, n int) int {
	const offset32, prime32 = 2166136261, 16777619
	h := uint32(offset32)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= prime32
	}
	return int(h % uint32(n))
}

// queueGroup is messages of one topic sent in one request; queue is the
// queue they were grouped for, or -1 when the topic's queues are not known
// yet (then channelQueueSelector picks one).
type queueGroup struct {
	queue int
	msgs  []outMessage
}

// byQueue splits msgs (one topic) into one group per queue among n,
// keeping their order within each group. With n unknown (0) or 1 it
// returns msgs as one group.
func byQueue(msgs []outMessage, n int) []queueGroup {
	if n <= 1 || len(msgs) <= 1 {
		return []queueGroup{{queue: -1, msgs: msgs}}
	}
	buckets := make([][]outMessage, n)
	for _, m := range msgs {
		i := 0
		if m.shardingKey != "" {
			i = queueIndex(m.shardingKey, n)
		}
		buckets[i] = append(buckets[i], m)
	}
	var groups []queueGroup
	for i, b := range buckets {
		if len(b) > 0 {
			groups = append(groups, queueGroup{queue: i, msgs: b})
		}
	}
	return groups
}
