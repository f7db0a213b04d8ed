package rocketmqfake

import (
	"encoding/json"
	"sort"
	"time"
)

// clientState is what the broker knows about one client instance (one
// rocketmq-client-go rmqClient: "ip@instanceName").
type clientState struct {
	id             string
	conn           *conn // nil while disconnected (kept as a member until expiry)
	lastHeartbeat  time.Time
	consumerGroups map[string]bool
	producerGroups map[string]bool
}

// member reports whether the client still counts in its groups' consumer
// lists: connected, or disconnected by the fake and not yet expired.
func (cs *clientState) member(now time.Time, expiry time.Duration) bool {
	if cs.conn != nil && !cs.conn.isClosed() {
		return true
	}
	return now.Sub(cs.lastHeartbeat) < expiry
}

type lockKey struct {
	group, topic, broker string
	queue                int
}

type lockState struct {
	clientID string
	until    time.Time
}

// lockLiveTime is the broker's REBALANCE_LOCK_MAX_LIVE_TIME.
const lockLiveTime = 60 * time.Second

// heartbeatBody is HeartbeatData. The client serialises its sets with a
// custom marshaller; fields we cannot read are skipped rather than failing
// the whole heartbeat.
type heartbeatBody struct {
	ClientID        string          `json:"clientID"`
	ProducerDataSet json.RawMessage `json:"producerDataSet"`
	ConsumerDataSet json.RawMessage `json:"consumerDataSet"`
}

type consumerData struct {
	GroupName           string             `json:"groupName"`
	ConsumeType         string             `json:"consumeType"`
	MessageModel        string             `json:"messageModel"`
	ConsumeFromWhere    string             `json:"consumeFromWhere"`
	SubscriptionDataSet []subscriptionData `json:"subscriptionDataSet"`
}

type subscriptionData struct {
	Topic          string `json:"topic"`
	SubString      string `json:"subString"`
	ExpressionType string `json:"expressionType"`
}

// handleHeartbeat registers the client and its groups. When a group's
// member set changes, every connected member is sent
// NOTIFY_CONSUMER_IDS_CHANGED so it rebalances at once instead of on its
// 20 s timer — the same thing the broker's ConsumerManager does.
func (f *Fake) handleHeartbeat(c *conn, req *command) *command {
	var hb heartbeatBody
	if err := json.Unmarshal(req.Body, &hb); err != nil || hb.ClientID == "" {
		return response(req, ResSystemError, "rocketmqfake: bad heartbeat body")
	}
	var producers []struct {
		GroupName string `json:"groupName"`
	}
	var consumers []consumerData
	_ = json.Unmarshal(hb.ProducerDataSet, &producers)
	if err := json.Unmarshal(hb.ConsumerDataSet, &consumers); err != nil && len(hb.ConsumerDataSet) > 0 {
		f.log.Warn("rocketmqfake: unreadable consumerDataSet", "client", hb.ClientID, "err", err)
	}

	f.mu.Lock()
	now := time.Now()
	cs := f.clients[hb.ClientID]
	if cs == nil {
		cs = &clientState{id: hb.ClientID, consumerGroups: map[string]bool{}, producerGroups: map[string]bool{}}
		f.clients[hb.ClientID] = cs
	}
	changed := map[string]bool{}
	wasMember := cs.member(now, f.opts.ClientExpiry)
	cs.conn = c
	c.clientID = hb.ClientID
	cs.lastHeartbeat = now

	newGroups := map[string]bool{}
	for _, cd := range consumers {
		if cd.GroupName == "" {
			continue
		}
		newGroups[cd.GroupName] = true
		if !cs.consumerGroups[cd.GroupName] || !wasMember {
			changed[cd.GroupName] = true
		}
		subs := f.groupSubs[cd.GroupName]
		if subs == nil {
			subs = map[string]*subscription{}
			f.groupSubs[cd.GroupName] = subs
		}
		for _, sd := range cd.SubscriptionDataSet {
			if sd.Topic == "" {
				continue
			}
			subs[sd.Topic] = parseSubscription(sd.SubString, sd.ExpressionType)
		}
		// Like the broker, make sure the group's retry topic exists.
		f.topicLocked(retryTopicPrefix+cd.GroupName, true)
	}
	for g := range cs.consumerGroups {
		if !newGroups[g] {
			changed[g] = true
		}
	}
	cs.consumerGroups = newGroups
	cs.producerGroups = map[string]bool{}
	for _, p := range producers {
		if p.GroupName != "" {
			cs.producerGroups[p.GroupName] = true
		}
	}
	targets := f.notifyTargetsLocked(changed)
	f.mu.Unlock()

	f.notify(targets)
	return response(req, ResSuccess, "")
}

// handleUnregister serves UNREGISTER_CLIENT (Java clients send it on
// shutdown; rocketmq-client-go v2.1.2 does not, it just closes the socket).
func (f *Fake) handleUnregister(req *command) *command {
	id := req.ext("clientID")
	group := req.ext("consumerGroup")
	producer := req.ext("producerGroup")
	f.mu.Lock()
	changed := map[string]bool{}
	if cs := f.clients[id]; cs != nil {
		if group != "" && cs.consumerGroups[group] {
			delete(cs.consumerGroups, group)
			changed[group] = true
			f.releaseLocksLocked(id, group)
		}
		if producer != "" {
			delete(cs.producerGroups, producer)
		}
	}
	targets := f.notifyTargetsLocked(changed)
	f.mu.Unlock()
	f.notify(targets)
	return response(req, ResSuccess, "")
}

// connClosed forgets a connection. A client that closed its own connection
// (consumer Shutdown) leaves its groups at once and the rest of each group
// is told to rebalance. A connection the fake closed keeps the client as a
// member until Options.ClientExpiry: a real broker would forget it, but the
// Go client only re-heartbeats every 30 s and until then a rebalance would
// find itself missing from the consumer list and drop all its queues, which
// turns every fault test into a 50 s wait.
func (f *Fake) connClosed(c *conn) {
	f.mu.Lock()
	delete(f.conns, c)
	changed := map[string]bool{}
	if cs := f.clients[c.clientID]; cs != nil && cs.conn == c {
		cs.conn = nil
		if !c.byFake.Load() {
			for g := range cs.consumerGroups {
				changed[g] = true
				f.releaseLocksLocked(cs.id, g)
			}
			delete(f.clients, cs.id)
		}
	}
	targets := f.notifyTargetsLocked(changed)
	f.mu.Unlock()
	f.notify(targets)
}

// consumerIDsLocked lists the group's current members, sorted.
func (f *Fake) consumerIDsLocked(group string) []string {
	now := time.Now()
	var ids []string
	for id, cs := range f.clients {
		if cs.consumerGroups[group] && cs.member(now, f.opts.ClientExpiry) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

type notifyTarget struct {
	c     *conn
	group string
}

// notifyTargetsLocked collects the live connections of every member of the
// changed groups.
func (f *Fake) notifyTargetsLocked(changed map[string]bool) []notifyTarget {
	var out []notifyTarget
	for g := range changed {
		for _, cs := range f.clients {
			if cs.consumerGroups[g] && cs.conn != nil && !cs.conn.isClosed() {
				out = append(out, notifyTarget{cs.conn, g})
			}
		}
	}
	return out
}

func (f *Fake) notify(targets []notifyTarget) {
	for _, t := range targets {
		f.log.Debug("rocketmqfake: notify consumer ids changed", "group", t.group, "remote", t.c.remote)
		f.sendOneway(t.c, ReqNotifyConsumerIdsChanged, map[string]string{"consumerGroup": t.group})
	}
}

// handleConsumerList serves GET_CONSUMER_LIST_BY_GROUP.
func (f *Fake) handleConsumerList(req *command) *command {
	group := req.ext("consumerGroup")
	f.mu.Lock()
	ids := f.consumerIDsLocked(group)
	f.mu.Unlock()
	if len(ids) == 0 {
		return response(req, ResSystemError, "no consumer for this group, "+group)
	}
	resp := response(req, ResSuccess, "")
	resp.Body, _ = json.Marshal(map[string]any{"consumerIdList": ids})
	return resp
}

// lockBody is LockBatchRequestBody / UnlockBatchRequestBody.
type lockBody struct {
	ConsumerGroup string `json:"consumerGroup"`
	ClientID      string `json:"clientId"`
	MQSet         []struct {
		Topic      string `json:"topic"`
		BrokerName string `json:"brokerName"`
		QueueID    int    `json:"queueId"`
	} `json:"mqSet"`
}

// handleLock serves LOCK_BATCH_MQ for orderly consumers: a queue is granted
// if free, expired or already held by the same client.
func (f *Fake) handleLock(req *command) *command {
	var b lockBody
	if err := json.Unmarshal(req.Body, &b); err != nil {
		return response(req, ResSystemError, "rocketmqfake: bad lock body")
	}
	now := time.Now()
	type mq struct {
		Topic      string `json:"topic"`
		BrokerName string `json:"brokerName"`
		QueueID    int    `json:"queueId"`
	}
	locked := []mq{}
	f.mu.Lock()
	for _, q := range b.MQSet {
		k := lockKey{b.ConsumerGroup, q.Topic, q.BrokerName, q.QueueID}
		cur, held := f.locks[k]
		if !held || cur.clientID == b.ClientID || now.After(cur.until) {
			f.locks[k] = lockState{clientID: b.ClientID, until: now.Add(lockLiveTime)}
			locked = append(locked, mq(q))
		}
	}
	f.mu.Unlock()
	resp := response(req, ResSuccess, "")
	resp.Body, _ = json.Marshal(map[string]any{"lockOKMQSet": locked})
	return resp
}

func (f *Fake) handleUnlock(req *command) *command {
	var b lockBody
	if err := json.Unmarshal(req.Body, &b); err != nil {
		return response(req, ResSystemError, "rocketmqfake: bad unlock body")
	}
	f.mu.Lock()
	for _, q := range b.MQSet {
		k := lockKey{b.ConsumerGroup, q.Topic, q.BrokerName, q.QueueID}
		if cur, ok := f.locks[k]; ok && cur.clientID == b.ClientID {
			delete(f.locks, k)
		}
	}
	f.mu.Unlock()
	return response(req, ResSuccess, "")
}

func (f *Fake) releaseLocksLocked(clientID, group string) {
	for k, v := range f.locks {
		if k.group == group && v.clientID == clientID {
			delete(f.locks, k)
		}
	}
}
