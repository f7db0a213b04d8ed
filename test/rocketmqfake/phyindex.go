package rocketmqfake

import (
	"cmp"
	"maps"
	"slices"
)

// phyIndex finds stored messages by commit-log offset (CONSUMER_SEND_MSG_BACK
// and VIEW_MESSAGE_BY_ID name messages that way). Offsets are handed out in
// increasing order and nearly every message is stored right away, so an
// append-only sorted slice does: no hashing and no rehashing as the store
// grows. The exception is a message that waited out a delay level: its
// offset was reserved when it was sent, smaller than those stored since,
// so it goes into a map rather than being inserted mid-slice.
// Guarded by Fake.mu.
type phyIndex struct {
	inOrder []*storedMsg // ascending phyOffset
	late    map[int64]*storedMsg
}

func (x *phyIndex) add(m *storedMsg) {
	if n := len(x.inOrder); n == 0 || x.inOrder[n-1].phyOffset < m.phyOffset {
		x.inOrder = append(x.inOrder, m)
		return
	}
	if x.late == nil {
		x.late = map[int64]*storedMsg{}
	}
	x.late[m.phyOffset] = m
}

// get returns the message at offset phy, or nil.
func (x *phyIndex) get(phy int64) *storedMsg {
	if m := x.late[phy]; m != nil {
		return m
	}
	i, found := slices.BinarySearchFunc(x.inOrder, phy, func(m *storedMsg, phy int64) int {
		return cmp.Compare(m.phyOffset, phy)
	})
	if !found {
		return nil
	}
	return x.inOrder[i]
}

// deleteTopic drops the messages of a deleted topic. Every stored message
// of that name belongs to it: appendLocked stores m into the topic
// registered under m.topic at the time.
func (x *phyIndex) deleteTopic(name string) {
	inTopic := func(m *storedMsg) bool { return m.topic == name }
	x.inOrder = slices.DeleteFunc(x.inOrder, inTopic)
	maps.DeleteFunc(x.late, func(_ int64, m *storedMsg) bool { return inTopic(m) })
}
