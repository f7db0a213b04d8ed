package rocketmqfake

import (
	"strconv"
	"strings"
	"time"
)

const (
	// maxFilterScan bounds the entries one pull examines, like the broker's
	// maxFilterMessageCount, so a filtered pull never walks a huge queue.
	maxFilterScan = 16000
	// maxPullBytes bounds one pull response body.
	maxPullBytes = 4 << 20
)

// subscription is a consumer group's filter for one topic.
type subscription struct {
	expr string
	all  bool
	tags map[string]bool
}

// parseSubscription parses a TAG expression "a || b". SQL92 cannot be
// evaluated by the fake; it matches everything (the client filters nothing
// by SQL itself, so tests using SQL92 see unfiltered delivery).
func parseSubscription(expr, exprType string) *subscription {
	s := &subscription{expr: expr, tags: map[string]bool{}}
	if (exprType != "" && !strings.EqualFold(exprType, "TAG")) || strings.TrimSpace(expr) == "" || strings.TrimSpace(expr) == "*" {
		s.all = true
		return s
	}
	for _, tag := range strings.Split(expr, "||") {
		if tag = strings.TrimSpace(tag); tag != "" {
			s.tags[tag] = true
		}
	}
	if len(s.tags) == 0 {
		s.all = true
	}
	return s
}

// matches reports whether a message passes the filter. The broker matches
// tag hash codes and the client re-checks exact tags; matching exact tags
// here gives the same outcome without hash collisions. Untagged messages
// only match "*".
func (s *subscription) matches(m *storedMsg) bool {
	if s == nil || s.all {
		return true
	}
	return s.tags[m.tags]
}

type pullHeader struct {
	group, topic   string
	queueID        int
	offset         int64
	maxMsgs        int
	sysFlag        int
	commitOffset   int64
	suspend        time.Duration
	subscription   string
	expressionType string
}

func parsePullHeader(req *command) pullHeader {
	h := pullHeader{
		group:          req.ext("consumerGroup"),
		topic:          req.ext("topic"),
		queueID:        req.extInt("queueId", -1),
		offset:         req.extInt64("queueOffset", 0),
		maxMsgs:        req.extInt("maxMsgNums", 32),
		sysFlag:        req.extInt("sysFlag", 0),
		commitOffset:   req.extInt64("commitOffset", -1),
		suspend:        time.Duration(req.extInt64("suspendTimeoutMillis", 0)) * time.Millisecond,
		subscription:   req.ext("subscription"),
		expressionType: req.ext("expressionType"),
	}
	if h.maxMsgs <= 0 {
		h.maxMsgs = 1
	}
	return h
}

// pullResult is what one look at a queue produced.
type pullResult struct {
	code     int16
	remark   string
	msgs     []*storedMsg
	next     int64
	min, max int64
	wake     chan struct{} // the queue's wake channel at the time of the look
}

// handlePull serves PULL_MESSAGE with long polling: when the consumer is
// caught up (PULL_NOT_FOUND) and asked to be suspended, the request is held
// until a message arrives in the queue, the suspend timeout passes, or the
// fake stops, and then answered. Status codes follow the broker:
//
//	found messages              SUCCESS, body = encoded records
//	offset == max (caught up)   PULL_NOT_FOUND, nextBeginOffset = offset
//	scanned, none matched       PULL_RETRY_IMMEDIATELY, nextBeginOffset past them
//	offset < min or > max       PULL_OFFSET_MOVED, nextBeginOffset corrected
//
// Beware PULL_OFFSET_MOVED with rocketmq-client-go: it drops the queue,
// sleeps 10 s and waits for the next rebalance.
func (f *Fake) handlePull(c *conn, req *command, stopCh chan struct{}) *command {
	h := parsePullHeader(req)
	f.mu.Lock()
	t := f.topicLocked(h.topic, true)
	if t == nil {
		f.mu.Unlock()
		return response(req, ResTopicNotExist, "topic["+h.topic+"] not exist, apply first please!")
	}
	if h.queueID < 0 || h.queueID >= len(t.queues) {
		f.mu.Unlock()
		return response(req, ResSystemError, "queueId["+strconv.Itoa(h.queueID)+"] is illegal, topic:["+h.topic+"]")
	}
	// The pull carries the consumer's in-memory offset; a master broker
	// commits it, which is how offsets advance between the client's 5 s
	// persist rounds. Requests are handled concurrently, so an older pull
	// may be processed after a newer UPDATE_CONSUMER_OFFSET: only move
	// forward here (explicit updates may still move an offset back).
	if h.sysFlag&pullFlagCommitOffset != 0 && h.commitOffset >= 0 && h.group != "" {
		k := offsetKey{h.group, h.topic, h.queueID}
		if cur, ok := f.offsets[k]; !ok || cur < h.commitOffset {
			f.offsets[k] = h.commitOffset
		}
	}
	var sub *subscription
	if h.sysFlag&pullFlagSubscription != 0 && h.subscription != "" {
		sub = parseSubscription(h.subscription, h.expressionType)
	} else if s := f.groupSubs[h.group][h.topic]; s != nil {
		sub = s
	}
	res := f.lookLocked(h, sub)
	f.mu.Unlock()

	suspend := h.sysFlag&pullFlagSuspend != 0 && h.suspend > 0
	if res.code == ResPullNotFound && suspend {
		wait := h.suspend
		if f.opts.MaxLongPoll > 0 && wait > f.opts.MaxLongPoll {
			wait = f.opts.MaxLongPoll
		}
		deadline := time.NewTimer(wait)
		defer deadline.Stop()
	hold:
		for res.code == ResPullNotFound {
			select {
			case <-res.wake:
			case <-deadline.C:
				break hold
			case <-stopCh:
				break hold
			case <-c.closed:
				return nil
			}
			f.mu.Lock()
			res = f.lookLocked(h, sub)
			f.mu.Unlock()
		}
	}

	resp := response(req, res.code, res.remark)
	resp.ExtFields["nextBeginOffset"] = strconv.FormatInt(res.next, 10)
	resp.ExtFields["minOffset"] = strconv.FormatInt(res.min, 10)
	resp.ExtFields["maxOffset"] = strconv.FormatInt(res.max, 10)
	resp.ExtFields["suggestWhichBrokerId"] = "0"
	if res.code == ResSuccess {
		resp.records = make([][]byte, len(res.msgs))
		for i, m := range res.msgs {
			resp.records[i] = m.wire
		}
	}
	return resp
}

// lookLocked examines the queue once. Caller holds f.mu.
func (f *Fake) lookLocked(h pullHeader, sub *subscription) pullResult {
	t := f.topics[h.topic]
	if t == nil || h.queueID >= len(t.queues) {
		// Deleted while we waited.
		return pullResult{code: ResPullNotFound, next: h.offset, wake: make(chan struct{})}
	}
	q := t.queues[h.queueID]
	maxOff := int64(len(q.msgs))
	r := pullResult{min: 0, max: maxOff, wake: q.wake}
	q.watched = true
	switch {
	case maxOff == 0 && h.offset != 0:
		r.code, r.next, r.remark = ResPullOffsetMoved, 0, "NO_MESSAGE_IN_QUEUE"
	case h.offset < 0:
		r.code, r.next, r.remark = ResPullOffsetMoved, 0, "OFFSET_TOO_SMALL"
	case h.offset == maxOff:
		r.code, r.next, r.remark = ResPullNotFound, h.offset, "OFFSET_OVERFLOW_ONE"
	case h.offset > maxOff:
		r.code, r.next, r.remark = ResPullOffsetMoved, maxOff, "OFFSET_OVERFLOW_BADLY"
	default:
		i, bytes := h.offset, 0
		for ; i < maxOff && i-h.offset < maxFilterScan && len(r.msgs) < h.maxMsgs; i++ {
			m := q.msgs[i]
			if !sub.matches(m) {
				continue
			}
			if bytes+len(m.wire) > maxPullBytes && len(r.msgs) > 0 {
				break
			}
			bytes += len(m.wire)
			r.msgs = append(r.msgs, m)
		}
		r.next = i
		if len(r.msgs) > 0 {
			r.code, r.remark = ResSuccess, "FOUND"
		} else {
			r.code, r.remark = ResPullRetryImmediately, "NO_MATCHED_MESSAGE"
		}
	}
	return r
}
