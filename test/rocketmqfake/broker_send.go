package rocketmqfake

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// sendHeader is SendMessageRequestHeader, read from either its long field
// names (SEND_MESSAGE) or the one-letter V2 names (SEND_MESSAGE_V2 and
// SEND_BATCH_MESSAGE).
type sendHeader struct {
	producerGroup     string
	topic             string
	queueID           int
	sysFlag           int32
	bornTimestamp     int64
	flag              int32
	properties        string
	reconsumeTimes    int32
	maxReconsumeTimes int
	batch             bool
}

func parseSendHeader(req *command) sendHeader {
	num := func(long, short string, def int64) int64 {
		v, err := strconv.ParseInt(req.extFirst(long, short), 10, 64)
		if err != nil {
			return def
		}
		return v
	}
	h := sendHeader{
		producerGroup:     req.extFirst("producerGroup", "a"),
		topic:             req.extFirst("topic", "b"),
		queueID:           int(num("queueId", "e", -1)),
		sysFlag:           int32(num("sysFlag", "f", 0)),
		bornTimestamp:     num("bornTimestamp", "g", 0),
		flag:              int32(num("flag", "h", 0)),
		properties:        req.extFirst("properties", "i"),
		reconsumeTimes:    int32(num("reconsumeTimes", "j", 0)),
		maxReconsumeTimes: int(num("maxReconsumeTimes", "l", -1)),
	}
	h.batch, _ = strconv.ParseBool(req.extFirst("batch", "m"))
	if req.Code == ReqSendBatchMessage {
		h.batch = true
	}
	return h
}

// handleSend stores a message (or a batch) and answers with the ids and
// offsets rocketmq-client-go's ProcessSendResponse reads: msgId (offset
// message ids, comma separated for a batch), queueId, queueOffset.
func (f *Fake) handleSend(c *conn, req *command) *command {
	h := parseSendHeader(req)
	if h.topic == "" {
		return response(req, ResMessageIllegal, "rocketmqfake: send without topic")
	}
	if len(h.topic) > 127 {
		// The v1 record layout has a one-byte topic length.
		return response(req, ResMessageIllegal, "rocketmqfake: topic longer than 127 bytes")
	}
	var items []batchItem
	if h.batch {
		var err error
		if items, err = decodeBatch(req.Body); err != nil || len(items) == 0 {
			return response(req, ResMessageIllegal, "rocketmqfake: bad batch body")
		}
	} else {
		items = []batchItem{{flag: h.flag, body: req.Body, props: h.properties}}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.topicLocked(h.topic, true)
	if t == nil {
		return response(req, ResTopicNotExist, "topic["+h.topic+"] not exist, apply first please!")
	}
	if t.perm&permWrite == 0 {
		return response(req, ResNoPermission, "the topic["+h.topic+"] sending message is forbidden")
	}
	qid := h.queueID
	if qid < 0 {
		qid = rand.IntN(len(t.queues))
	}
	if qid >= len(t.queues) {
		return response(req, ResSystemError, "request queueId["+strconv.Itoa(qid)+"] is illegal")
	}

	// A send to a retry topic (the Java client's fallback for a failed
	// CONSUMER_SEND_MSG_BACK) that has used up its retries goes to the DLQ.
	if strings.HasPrefix(h.topic, retryTopicPrefix) && !h.batch {
		maxTimes := h.maxReconsumeTimes
		if maxTimes < 0 {
			maxTimes = f.opts.MaxReconsumeTimes
		}
		if int(h.reconsumeTimes) >= maxTimes {
			group := strings.TrimPrefix(h.topic, retryTopicPrefix)
			t = f.topicLocked(dlqTopicPrefix+group, true)
			qid = rand.IntN(len(t.queues))
		}
	}

	now := time.Now().UnixMilli()
	born := parseHostPort(c.remote)
	store := parseHostPort(f.brAddr)
	// The answer's ids go into one buffer; the messages into one block
	// (they all stay in the store, so they can share an allocation).
	ids := make([]byte, 0, len(items)*(2*(len(store.ip)+12)+1))
	msgs := make([]storedMsg, len(items))
	var firstOffset int64 = -1
	for i, it := range items {
		m := &msgs[i]
		*m = storedMsg{
			queueID: qid, flag: it.flag, sysFlag: h.sysFlag, bornTS: h.bornTimestamp, bornHost: born,
			storeTS: now, storeHost: store, reconsumeTimes: h.reconsumeTimes, body: it.body,
		}
		if h.batch {
			m.sysFlag &^= msgFlagCompressed // batch records are never compressed
		}
		if m.bornTS == 0 {
			m.bornTS = now
		}
		m.setPropsRaw(it.props)
		if i > 0 {
			ids = append(ids, ',')
		}

		// Transactional half message: parked until END_TRANSACTION.
		if m.sysFlag&msgFlagTxMask == msgFlagTxPrepared {
			m.topic = t.name
			m.phyOffset = f.reservePhyLocked(m)
			m.encodeInto(&f.records)
			f.half[m.phyOffset] = m
			ids = appendMessageID(ids, store, m.phyOffset)
			firstOffset = 0
			continue
		}

		level := 0
		if delay, ok := propValue(m.propsRaw, propDelay); ok {
			level, _ = strconv.Atoi(delay) // not for "": its error would be an allocation per message
		}
		phy := f.deliverLocked(t, m, level)
		ids = appendMessageID(ids, store, phy)
		if firstOffset < 0 {
			if level > 0 {
				firstOffset = 0 // it lives in the schedule topic for now
			} else {
				firstOffset = m.queueOffset
			}
		}
	}
	f.sendCount++

	resp := response(req, ResSuccess, "")
	resp.ExtFields["msgId"] = string(ids)
	resp.ExtFields["queueId"] = strconv.Itoa(qid)
	resp.ExtFields["queueOffset"] = strconv.FormatInt(firstOffset, 10)
	resp.ExtFields["MSG_REGION"] = "DefaultRegion"
	resp.ExtFields["TRACE_ON"] = "true"
	return resp
}

// handleEndTransaction commits or rolls back a half message
// (commitOrRollback 8 = commit, 12 = rollback, 0 = unknown: keep waiting).
// The fake never asks producers to check transaction state.
func (f *Fake) handleEndTransaction(req *command) *command {
	phy := req.extInt64("commitLogOffset", -1)
	kind := int32(req.extInt("commitOrRollback", 0))
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.half[phy]
	if m == nil {
		return response(req, ResSystemError, "rocketmqfake: no prepared message at that offset")
	}
	switch kind {
	case msgFlagTxCommit:
		delete(f.half, phy)
		t := f.topicLocked(m.topic, true)
		if t == nil {
			return response(req, ResTopicNotExist, "topic["+m.topic+"] not exist")
		}
		props := m.properties()
		delete(props, propTranPrepared)
		m.setProps(props)
		m.sysFlag = m.sysFlag&^msgFlagTxMask | msgFlagTxCommit
		m.storeTS = 0
		level, _ := strconv.Atoi(props[propDelay])
		f.deliverLocked(t, m, level)
	case msgFlagTxRollback:
		delete(f.half, phy)
	}
	return response(req, ResSuccess, "")
}
