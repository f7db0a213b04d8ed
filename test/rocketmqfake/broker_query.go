package rocketmqfake

import (
	"strconv"
	"strings"
	"time"
)

// handleQueryMessage serves QUERY_MESSAGE (admin "query by key"): messages
// of the topic whose KEYS contain the key, or whose UNIQ_KEY is the key when
// the request sets _UNIQUE_KEY_QUERY.
func (f *Fake) handleQueryMessage(req *command) *command {
	topic, key := req.ext("topic"), req.ext("key")
	maxNum := req.extInt("maxNum", 32)
	begin := req.extInt64("beginTimestamp", 0)
	end := req.extInt64("endTimestamp", time.Now().UnixMilli()+1)
	byUniq, _ := strconv.ParseBool(req.ext("_UNIQUE_KEY_QUERY"))
	f.mu.Lock()
	defer f.mu.Unlock()
	var body []byte
	var last int64
	n := 0
	for _, m := range f.messagesLocked(topic) {
		if n >= maxNum {
			break
		}
		if m.storeTS < begin || m.storeTS > end {
			continue
		}
		hit := false
		if byUniq {
			uniq, _ := propValue(m.propsRaw, propUniqKey)
			hit = uniq == key
		} else {
			keys, _ := propValue(m.propsRaw, propKeys)
			for _, k := range strings.Fields(keys) {
				if k == key {
					hit = true
					break
				}
			}
		}
		if hit {
			body = append(body, m.wire...)
			last = m.phyOffset
			n++
		}
	}
	if n == 0 {
		return response(req, ResQueryNotFound, "can not find message, maybe time range not correct")
	}
	resp := response(req, ResSuccess, "")
	resp.Body = body
	resp.ExtFields["indexLastUpdateTimestamp"] = strconv.FormatInt(time.Now().UnixMilli(), 10)
	resp.ExtFields["indexLastUpdatePhyoffset"] = strconv.FormatInt(last, 10)
	return resp
}

// handleViewMessage serves VIEW_MESSAGE_BY_ID (by commit-log offset).
func (f *Fake) handleViewMessage(req *command) *command {
	phy := req.extInt64("offset", -1)
	f.mu.Lock()
	m := f.byPhy.get(phy)
	f.mu.Unlock()
	if m == nil {
		return response(req, ResSystemError, "can not find message by the offset, "+strconv.FormatInt(phy, 10))
	}
	resp := response(req, ResSuccess, "")
	resp.Body = m.wire
	return resp
}
