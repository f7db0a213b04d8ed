package rocketmqfake

import (
	"math/rand/v2"
	"strconv"
	"time"
)

// handleSendBack serves CONSUMER_SEND_MSG_BACK, which a push consumer sends
// for every message it returns ConsumeRetryLater for. Like the broker
// (SendMessageProcessor.consumerSendMsgBack):
//
//   - the original is found by its commit-log offset;
//   - if its reconsume count already reached maxReconsumeTimes (from the
//     request, else Options.MaxReconsumeTimes) or delayLevel < 0, a copy goes
//     to %DLQ%<group>;
//   - otherwise a copy goes to %RETRY%<group> after delay level
//     (3 + reconsumeTimes when the consumer passed 0), see Options.DelayLevels;
//   - the copy has reconsumeTimes+1, RETRY_TOPIC = the original topic (the
//     client uses it to hand the message to the original topic's callback),
//     ORIGIN_MESSAGE_ID, and keeps body, flag, tags, keys and born data.
//
// rocketmq-client-go ignores the response code (only transport errors make
// it retry locally), so an error here silently loses the message, exactly as
// with a real broker.
func (f *Fake) handleSendBack(req *command) *command {
	group := req.ext("group")
	phy := req.extInt64("offset", -1)
	delayLevel := req.extInt("delayLevel", 0)
	maxTimes := req.extInt("maxReconsumeTimes", -1)
	if maxTimes < 0 {
		maxTimes = f.opts.MaxReconsumeTimes
	}
	if group == "" {
		return response(req, ResSystemError, "rocketmqfake: send back without group")
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	orig := f.byPhy.get(phy)
	if orig == nil {
		return response(req, ResSystemError, "look message by offset failed, "+strconv.FormatInt(phy, 10))
	}
	props := orig.properties()
	if props[propRetryTopic] == "" {
		props[propRetryTopic] = orig.topic
	}
	if props[propOriginMessageID] == "" {
		props[propOriginMessageID] = orig.offsetMsgID()
	}

	var t *topicState
	if int(orig.reconsumeTimes) >= maxTimes || delayLevel < 0 {
		t = f.topicLocked(dlqTopicPrefix+group, true)
		delayLevel = 0
		delete(props, propDelay)
	} else {
		t = f.topicLocked(retryTopicPrefix+group, true)
		if delayLevel == 0 {
			delayLevel = 3 + int(orig.reconsumeTimes)
		}
		props[propDelay] = strconv.Itoa(delayLevel)
	}
	m := &storedMsg{
		queueID: rand.IntN(len(t.queues)), flag: orig.flag, sysFlag: orig.sysFlag,
		bornTS: orig.bornTS, bornHost: orig.bornHost, storeTS: time.Now().UnixMilli(), storeHost: orig.storeHost,
		reconsumeTimes: orig.reconsumeTimes + 1, body: orig.body,
	}
	m.setProps(props)
	f.deliverLocked(t, m, delayLevel)
	f.log.Debug("rocketmqfake: send back", "group", group, "to", t.name, "reconsumeTimes", m.reconsumeTimes)
	return response(req, ResSuccess, "")
}
