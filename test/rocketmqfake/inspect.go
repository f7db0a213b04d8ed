package rocketmqfake

import (
	"context"
	"sort"
	"time"
)

// Messages returns every message stored in topic, in store order (all
// queues). Messages still waiting out a delay level are not included.
func (f *Fake) Messages(topic string) []Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	stored := f.messagesLocked(topic)
	out := make([]Message, len(stored))
	for i, m := range stored {
		out[i] = m.export()
	}
	return out
}

// QueueMessages returns the messages of one queue, by queue offset.
func (f *Fake) QueueMessages(topic string, queue int) []Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.topics[topic]
	if t == nil || queue < 0 || queue >= len(t.queues) {
		return nil
	}
	out := make([]Message, len(t.queues[queue].msgs))
	for i, m := range t.queues[queue].msgs {
		out[i] = m.export()
	}
	return out
}

// RetryMessages returns the contents of %RETRY%<group>.
func (f *Fake) RetryMessages(group string) []Message { return f.Messages(retryTopicPrefix + group) }

// DLQ returns the contents of %DLQ%<group>.
func (f *Fake) DLQ(group string) []Message { return f.Messages(dlqTopicPrefix + group) }

// WaitMessages waits until topic holds at least n messages and returns
// them, or returns what it has with ctx's error.
func (f *Fake) WaitMessages(ctx context.Context, topic string, n int) ([]Message, error) {
	err := WaitFor(ctx, func() bool { return f.count(topic) >= n })
	return f.Messages(topic), err
}

func (f *Fake) count(topic string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	if t := f.topics[topic]; t != nil {
		for _, q := range t.queues {
			n += len(q.msgs)
		}
	}
	return n
}

// Topics lists the known topics, sorted.
func (f *Fake) Topics() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.topics))
	for name := range f.topics {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// QueueCount returns the number of queues of topic (0 if unknown).
func (f *Fake) QueueCount(topic string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t := f.topics[topic]; t != nil {
		return len(t.queues)
	}
	return 0
}

// Offset returns the committed consumer offset of group on topic/queue, or
// -1 if the group never committed one. It is the next offset to consume.
func (f *Fake) Offset(group, topic string, queue int) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if off, ok := f.offsets[offsetKey{group, topic, queue}]; ok {
		return off
	}
	return -1
}

// Offsets returns group's committed offsets on topic by queue id.
func (f *Fake) Offsets(group, topic string) map[int]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[int]int64{}
	for k, v := range f.offsets {
		if k.group == group && k.topic == topic {
			out[k.queue] = v
		}
	}
	return out
}

// SetOffset sets a committed offset, as an admin "reset offset" would for
// a consumer that is not running.
func (f *Fake) SetOffset(group, topic string, queue int, offset int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.offsets[offsetKey{group, topic, queue}] = offset
}

// Lag returns how many messages of topic group has not committed yet,
// summed over queues (a queue never committed counts from 0).
func (f *Fake) Lag(group, topic string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.topics[topic]
	if t == nil {
		return 0
	}
	var lag int64
	for i, q := range t.queues {
		off := f.offsets[offsetKey{group, topic, i}]
		if n := int64(len(q.msgs)) - off; n > 0 {
			lag += n
		}
	}
	return lag
}

// SendCount returns the number of successful send requests (a batch
// counts once).
func (f *Fake) SendCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sendCount
}

// RequestCount returns how many requests with this code arrived (including
// ones a fault answered, delayed or dropped).
func (f *Fake) RequestCount(code int16) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reqCounts[code]
}

// Client describes a client instance known from its heartbeats.
type Client struct {
	ID             string // "ip@instanceName"
	Addr           string // remote address of its broker connection ("" when disconnected)
	Connected      bool
	LastHeartbeat  time.Time
	ConsumerGroups []string
	ProducerGroups []string
}

// Clients lists the clients that heartbeated and are still members of
// something (connected, or disconnected by the fake and not yet expired).
func (f *Fake) Clients() []Client {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	var out []Client
	for _, cs := range f.clients {
		if !cs.member(now, f.opts.ClientExpiry) {
			continue
		}
		c := Client{ID: cs.id, LastHeartbeat: cs.lastHeartbeat}
		if cs.conn != nil && !cs.conn.isClosed() {
			c.Connected, c.Addr = true, cs.conn.remote
		}
		for g := range cs.consumerGroups {
			c.ConsumerGroups = append(c.ConsumerGroups, g)
		}
		for g := range cs.producerGroups {
			c.ProducerGroups = append(c.ProducerGroups, g)
		}
		sort.Strings(c.ConsumerGroups)
		sort.Strings(c.ProducerGroups)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// ConsumerIDs returns the members of a consumer group as
// GET_CONSUMER_LIST_BY_GROUP reports them.
func (f *Fake) ConsumerIDs(group string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.consumerIDsLocked(group)
}

// Connections returns the number of open client connections (name server
// and broker).
func (f *Fake) Connections() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.conns)
}

// Running reports whether the fake is started.
func (f *Fake) Running() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.running
}

// OriginalTopic returns the topic a retry or DLQ message was first sent to
// (its RETRY_TOPIC property), or the message's own topic.
func (m Message) OriginalTopic() string {
	if rt := m.Properties[propRetryTopic]; rt != "" {
		return rt
	}
	return m.Topic
}

// Subscription returns the expression group last subscribed topic with (from
// its heartbeats), e.g. "connect||disconnect||tcpclean" or "*".
func (f *Fake) Subscription(group, topic string) (expr string, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.groupSubs[group][topic]
	if s == nil {
		return "", false
	}
	return s.expr, true
}
