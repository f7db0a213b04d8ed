package rocketmqfake

import (
	"sort"
	"strconv"
	"strings"
	"time"
)

// topicState is one topic on the (only) broker.
type topicState struct {
	name   string
	perm   int
	queues []*queueState
}

// queueState is one consume queue. Long-polling pulls wait on wake; the
// first append after a pull looked at the queue closes and replaces it.
type queueState struct {
	msgs []*storedMsg
	wake chan struct{}
	// watched says wake was handed to a pull since it was made. Appends
	// replace it only then: a batch of 256 messages would otherwise make
	// and close 256 channels nobody waits on.
	watched bool
}

type offsetKey struct {
	group, topic string
	queue        int
}

func isSystemTopic(topic string) bool {
	return strings.HasPrefix(topic, retryTopicPrefix) || strings.HasPrefix(topic, dlqTopicPrefix)
}

// createTopicLocked creates topic with n queues, or grows an existing one
// to at least n queues. Caller holds f.mu.
func (f *Fake) createTopicLocked(name string, n int) *topicState {
	t := f.topics[name]
	if t == nil {
		t = &topicState{name: name, perm: permRead | permWrite}
		f.topics[name] = t
		f.log.Debug("rocketmqfake: topic created", "topic", name, "queues", n)
	}
	for len(t.queues) < n {
		t.queues = append(t.queues, &queueState{wake: make(chan struct{})})
	}
	return t
}

// topicLocked returns topic, creating it when allowed: system topics
// (%RETRY%, %DLQ%) always, others unless NoAutoCreateTopics.
func (f *Fake) topicLocked(name string, create bool) *topicState {
	if t := f.topics[name]; t != nil {
		return t
	}
	if name == "" || !create {
		return nil
	}
	if isSystemTopic(name) {
		return f.createTopicLocked(name, f.opts.RetryQueues)
	}
	if f.opts.NoAutoCreateTopics {
		return nil
	}
	return f.createTopicLocked(name, f.opts.Queues)
}

// CreateTopic creates topic with the given number of queues (Options.Queues
// when queues <= 0), or grows it. Needed with NoAutoCreateTopics.
func (f *Fake) CreateTopic(topic string, queues int) {
	if queues <= 0 {
		queues = f.opts.Queues
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.createTopicLocked(topic, queues)
}

// appendLocked stores m at the end of its queue, assigning the queue
// offset, the commit-log offset (unless reserved earlier, phy >= 0) and the
// wire encoding, and wakes long-polling pulls. Caller holds f.mu.
func (f *Fake) appendLocked(t *topicState, m *storedMsg, phy int64) {
	q := t.queues[m.queueID]
	m.topic = t.name
	m.queueOffset = int64(len(q.msgs))
	if m.storeTS == 0 {
		m.storeTS = time.Now().UnixMilli()
	}
	if phy >= 0 {
		m.phyOffset = phy
	} else {
		m.phyOffset = f.reservePhyLocked(m)
	}
	m.encodeInto(&f.records)
	q.msgs = append(q.msgs, m)
	f.byPhy.add(m)
	if q.watched {
		close(q.wake)
		q.wake, q.watched = make(chan struct{}), false
	}
}

// reservePhyLocked hands out the next commit-log offset. Offsets advance by
// the record size, like a real commit log, so they are unique and grow.
func (f *Fake) reservePhyLocked(m *storedMsg) int64 {
	phy := f.nextPhy
	f.nextPhy += int64(m.encodedSize())
	return phy
}

// delayFor maps a delay level to a duration (see Options.DelayLevels).
func (f *Fake) delayFor(level int) time.Duration {
	if level <= 0 || len(f.opts.DelayLevels) == 0 {
		return 0
	}
	if level > len(f.opts.DelayLevels) {
		level = len(f.opts.DelayLevels)
	}
	return f.opts.DelayLevels[level-1]
}

// deliverLocked stores m in topic t, honouring a delay level the way the
// broker's schedule service does: the message gets REAL_TOPIC/REAL_QID, its
// DELAY property is cleared, and it becomes visible (with a fresh queue
// offset) when the delay has passed. It returns the reserved commit-log
// offset. Caller holds f.mu.
func (f *Fake) deliverLocked(t *topicState, m *storedMsg, level int) int64 {
	if level <= 0 {
		f.appendLocked(t, m, -1)
		return m.phyOffset
	}
	props := m.properties()
	delete(props, propDelay)
	props[propRealTopic] = t.name
	props[propRealQueueID] = strconv.Itoa(m.queueID)
	m.setProps(props)
	m.topic = t.name
	phy := f.reservePhyLocked(m)
	d := f.delayFor(level)
	if d <= 0 {
		f.appendLocked(t, m, phy)
		return phy
	}
	time.AfterFunc(d, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		// The topic may have been deleted meanwhile; recreate it rather
		// than lose the message.
		tt := f.topics[t.name]
		if tt == nil {
			tt = f.createTopicLocked(t.name, len(t.queues))
		}
		if m.queueID >= len(tt.queues) {
			m.queueID = 0
		}
		m.storeTS = 0
		f.appendLocked(tt, m, phy)
	})
	return phy
}

// messagesLocked returns topic's messages in store order.
func (f *Fake) messagesLocked(topic string) []*storedMsg {
	t := f.topics[topic]
	if t == nil {
		return nil
	}
	var out []*storedMsg
	for _, q := range t.queues {
		out = append(out, q.msgs...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].phyOffset < out[j].phyOffset })
	return out
}
