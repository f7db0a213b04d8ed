package rocketmqfake

import (
	"strconv"
)

// handleQueryConsumerOffset serves QUERY_CONSUMER_OFFSET. For a queue the
// group never committed it answers like a real broker whose queue still
// starts at 0 in memory: offset 0 (see Options.NewGroupsStartAtMaxOffset).
func (f *Fake) handleQueryConsumerOffset(req *command) *command {
	k := offsetKey{req.ext("consumerGroup"), req.ext("topic"), req.extInt("queueId", -1)}
	f.mu.Lock()
	off, ok := f.offsets[k]
	f.mu.Unlock()
	if !ok {
		if f.opts.NewGroupsStartAtMaxOffset {
			return response(req, ResQueryNotFound, "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first")
		}
		off = 0
	}
	resp := response(req, ResSuccess, "")
	resp.ExtFields["offset"] = strconv.FormatInt(off, 10)
	return resp
}

// handleUpdateConsumerOffset serves UPDATE_CONSUMER_OFFSET. The Go client
// sends it without the oneway flag but never reads the answer.
func (f *Fake) handleUpdateConsumerOffset(req *command) *command {
	k := offsetKey{req.ext("consumerGroup"), req.ext("topic"), req.extInt("queueId", -1)}
	off := req.extInt64("commitOffset", -1)
	if k.group == "" || k.topic == "" || k.queue < 0 || off < 0 {
		return response(req, ResSystemError, "rocketmqfake: bad UPDATE_CONSUMER_OFFSET header")
	}
	f.mu.Lock()
	f.offsets[k] = off
	f.mu.Unlock()
	f.log.Debug("rocketmqfake: offset updated", "group", k.group, "topic", k.topic, "queue", k.queue, "offset", off)
	return response(req, ResSuccess, "")
}

// handleQueueOffsets serves GET_MAX_OFFSET, GET_MIN_OFFSET,
// SEARCH_OFFSET_BY_TIMESTAMP and GET_EARLIEST_MSG_STORETIME.
func (f *Fake) handleQueueOffsets(req *command) *command {
	topic, qid := req.ext("topic"), req.extInt("queueId", -1)
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.topicLocked(topic, true)
	if t == nil {
		return response(req, ResTopicNotExist, "topic["+topic+"] not exist")
	}
	if qid < 0 || qid >= len(t.queues) {
		return response(req, ResSystemError, "queueId["+strconv.Itoa(qid)+"] is illegal")
	}
	msgs := t.queues[qid].msgs
	resp := response(req, ResSuccess, "")
	switch req.Code {
	case ReqGetMaxOffset:
		resp.ExtFields["offset"] = strconv.Itoa(len(msgs))
	case ReqGetMinOffset:
		resp.ExtFields["offset"] = "0"
	case ReqSearchOffsetByTimestamp:
		ts := req.extInt64("timestamp", 0)
		off := len(msgs)
		for i, m := range msgs {
			if m.storeTS >= ts {
				off = i
				break
			}
		}
		resp.ExtFields["offset"] = strconv.Itoa(off)
	case ReqGetEarliestMsgStoreTime:
		if len(msgs) == 0 {
			return response(req, ResSystemError, "rocketmqfake: queue is empty")
		}
		resp.ExtFields["timestamp"] = strconv.FormatInt(msgs[0].storeTS, 10)
	}
	return resp
}
