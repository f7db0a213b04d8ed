package mqttbroker

import (
	"strings"
	"sync"
)

// subscriptionTree indexes subscriptions by topic filter level, so routing
// a message costs the depth of its topic, not the number of subscriptions.
type subscriptionTree struct {
	mu   sync.RWMutex
	root *filterNode
}

type filterNode struct {
	children map[string]*filterNode // by level; "+" and "#" are ordinary keys
	subs     map[*session]byte      // sessions subscribed to the filter ending here
}

func (t *subscriptionTree) init() { t.root = &filterNode{} }

// add subscribes sess to filter at qos, replacing an earlier QoS.
func (t *subscriptionTree) add(filter string, sess *session, qos byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.root
	for level := range strings.SplitSeq(filter, "/") {
		child := n.children[level]
		if child == nil {
			if n.children == nil {
				n.children = make(map[string]*filterNode)
			}
			child = &filterNode{}
			n.children[level] = child
		}
		n = child
	}
	if n.subs == nil {
		n.subs = make(map[*session]byte)
	}
	n.subs[sess] = qos
}

// remove unsubscribes sess from filter and prunes nodes left empty.
func (t *subscriptionTree) remove(filter string, sess *session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	levels := strings.Split(filter, "/")
	path := make([]*filterNode, 0, len(levels)+1)
	n := t.root
	path = append(path, n)
	for _, level := range levels {
		n = n.children[level]
		if n == nil {
			return
		}
		path = append(path, n)
	}
	delete(n.subs, sess)
	for i := len(levels) - 1; i >= 0; i-- {
		node := path[i+1]
		if len(node.subs) > 0 || len(node.children) > 0 {
			return
		}
		delete(path[i].children, levels[i])
	}
}

// match calls visit for every subscription whose filter matches topic
// [MQTT-4.7]. Wildcards at the first level do not match topics beginning
// with '$' [MQTT-4.7.2-1].
func (t *subscriptionTree) match(topic string, visit func(*session, byte)) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	dollar := strings.HasPrefix(topic, "$")
	matchLevels(t.root, topic, !dollar, visit)
}

// matchLevels matches the remaining topic below n. wild says whether
// wildcard children may match at this level.
func matchLevels(n *filterNode, topic string, wild bool, visit func(*session, byte)) {
	level, rest, more := strings.Cut(topic, "/")
	if wild {
		if hash := n.children["#"]; hash != nil {
			visitAll(hash, visit) // '#' matches this level and all below
		}
	}
	next := []*filterNode{n.children[level]}
	if wild {
		next = append(next, n.children["+"])
	}
	for _, child := range next {
		if child == nil {
			continue
		}
		if more {
			matchLevels(child, rest, true, visit)
			continue
		}
		visitAll(child, visit)
		// "a/#" also matches "a" [MQTT-4.7.1-2].
		if hash := child.children["#"]; hash != nil {
			visitAll(hash, visit)
		}
	}
}

func visitAll(n *filterNode, visit func(*session, byte)) {
	for sess, qos := range n.subs {
		visit(sess, qos)
	}
}
