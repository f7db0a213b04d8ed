package rocketmqfake

import (
	"encoding/json"
	"sort"
)

// Route data as the name server serialises it. brokerAddrs is keyed by
// broker id; the client parses the object by hand and accepts "0" as well
// as fastjson's bare 0, so standard JSON is fine.
type queueData struct {
	BrokerName     string `json:"brokerName"`
	ReadQueueNums  int    `json:"readQueueNums"`
	WriteQueueNums int    `json:"writeQueueNums"`
	Perm           int    `json:"perm"`
	TopicSynFlag   int    `json:"topicSynFlag"`
}

type brokerData struct {
	Cluster     string           `json:"cluster"`
	BrokerName  string           `json:"brokerName"`
	BrokerAddrs map[int64]string `json:"brokerAddrs"`
}

type topicRouteData struct {
	OrderTopicConf    string            `json:"orderTopicConf,omitempty"`
	QueueDatas        []queueData       `json:"queueDatas"`
	BrokerDatas       []brokerData      `json:"brokerDatas"`
	FilterServerTable map[string]string `json:"filterServerTable"`
}

func (f *Fake) handleNamesrv(c *conn, req *command) *command {
	switch req.Code {
	case ReqGetRouteInfoByTopic:
		return f.handleRoute(req)
	case ReqGetBrokerClusterInfo:
		return f.handleClusterInfo(req)
	case ReqGetAllTopicList:
		f.mu.Lock()
		list := make([]string, 0, len(f.topics))
		for name := range f.topics {
			list = append(list, name)
		}
		f.mu.Unlock()
		sort.Strings(list)
		resp := response(req, ResSuccess, "")
		resp.Body, _ = json.Marshal(map[string]any{"topicList": list})
		return resp
	case ReqDeleteTopicInNamesrv:
		return f.handleDeleteTopic(req)
	}
	return f.unsupported(c, req)
}

// handleRoute answers GET_ROUTEINFO_BY_TOPIC, creating the topic on first
// query (the fake's stand-in for autoCreateTopicEnable).
func (f *Fake) handleRoute(req *command) *command {
	topic := req.ext("topic")
	f.mu.Lock()
	t := f.topicLocked(topic, true)
	var n, perm int
	if t != nil {
		n, perm = len(t.queues), t.perm
	}
	brAddr := f.brAddr
	f.mu.Unlock()
	if t == nil {
		return response(req, ResTopicNotExist, "No topic route info in name server for the topic: "+topic)
	}
	route := topicRouteData{
		QueueDatas: []queueData{{BrokerName: f.opts.BrokerName, ReadQueueNums: n, WriteQueueNums: n, Perm: perm}},
		BrokerDatas: []brokerData{{Cluster: f.opts.ClusterName, BrokerName: f.opts.BrokerName,
			BrokerAddrs: map[int64]string{0: brAddr}}},
		FilterServerTable: map[string]string{},
	}
	resp := response(req, ResSuccess, "")
	resp.Body, _ = json.Marshal(route)
	return resp
}

func (f *Fake) handleClusterInfo(req *command) *command {
	brAddr := f.BrokerAddr()
	info := map[string]any{
		"brokerAddrTable": map[string]brokerData{f.opts.BrokerName: {Cluster: f.opts.ClusterName,
			BrokerName: f.opts.BrokerName, BrokerAddrs: map[int64]string{0: brAddr}}},
		"clusterAddrTable": map[string][]string{f.opts.ClusterName: {f.opts.BrokerName}},
	}
	resp := response(req, ResSuccess, "")
	resp.Body, _ = json.Marshal(info)
	return resp
}

// handleDeleteTopic serves both DELETE_TOPIC_IN_BROKER and _IN_NAMESRV: one
// process, one topic table.
func (f *Fake) handleDeleteTopic(req *command) *command {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t := f.topics[req.ext("topic")]; t != nil {
		for _, q := range t.queues {
			close(q.wake) // release long-polls; they find the topic gone
		}
		f.byPhy.deleteTopic(t.name)
		delete(f.topics, t.name)
	}
	return response(req, ResSuccess, "")
}

// handleCreateTopic serves UPDATE_AND_CREATE_TOPIC (admin tools).
func (f *Fake) handleCreateTopic(req *command) *command {
	n := req.extInt("writeQueueNums", 0)
	if r := req.extInt("readQueueNums", 0); r > n {
		n = r
	}
	if n <= 0 {
		n = f.opts.Queues
	}
	f.mu.Lock()
	t := f.createTopicLocked(req.ext("topic"), n)
	if p := req.extInt("perm", 0); p != 0 {
		t.perm = p
	}
	f.mu.Unlock()
	return response(req, ResSuccess, "")
}
