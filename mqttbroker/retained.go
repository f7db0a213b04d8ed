package mqttbroker

import (
	"strings"
	"sync"
)

// retainedStore keeps the last retained message of each topic
// [MQTT-3.3.1-5] in a tree by topic level, so a subscription's filter walks
// only the branches it can match.
type retainedStore struct {
	mu   sync.RWMutex
	root *topicNode
}

type topicNode struct {
	children map[string]*topicNode
	msg      *message
}

func (r *retainedStore) init() { r.root = &topicNode{} }

// set stores m as the retained message of its topic, or removes the
// retained message when m's payload is empty [MQTT-3.3.1-10]. It returns
// the change in the number of messages stored.
func (r *retainedStore) set(m *message) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	levels := strings.Split(m.topic, "/")
	if len(m.payload) == 0 {
		return r.removeLocked(levels)
	}
	n := r.root
	for _, level := range levels {
		child := n.children[level]
		if child == nil {
			if n.children == nil {
				n.children = make(map[string]*topicNode)
			}
			child = &topicNode{}
			n.children[level] = child
		}
		n = child
	}
	delta := 0
	if n.msg == nil {
		delta = 1
	}
	// [MQTT-3.3.1-7] a QoS 0 retained message replaces the previous one too.
	n.msg = &message{topic: m.topic, payload: m.payload, qos: m.qos, retain: true}
	return delta
}

func (r *retainedStore) removeLocked(levels []string) int {
	path := []*topicNode{r.root}
	n := r.root
	for _, level := range levels {
		n = n.children[level]
		if n == nil {
			return 0
		}
		path = append(path, n)
	}
	if n.msg == nil {
		return 0
	}
	n.msg = nil
	for i := len(levels) - 1; i >= 0; i-- {
		node := path[i+1]
		if node.msg != nil || len(node.children) > 0 {
			break
		}
		delete(path[i].children, levels[i])
	}
	return -1
}

// match calls visit for each retained message whose topic matches filter.
// It collects first and visits after unlocking, so visit may take locks.
func (r *retainedStore) match(filter string, visit func(*message)) {
	var found []*message
	r.mu.RLock()
	collectRetained(r.root, filter, true, &found)
	r.mu.RUnlock()
	for _, m := range found {
		visit(m)
	}
}

// collectRetained walks the filter's levels below n. root says whether n
// is the root, where wildcards skip topics beginning with '$' [MQTT-4.7.2-1].
func collectRetained(n *topicNode, filter string, root bool, found *[]*message) {
	level, rest, more := strings.Cut(filter, "/")
	switch level {
	case "#":
		// '#' matches the parent level too [MQTT-4.7.1-2].
		if n.msg != nil && !root {
			*found = append(*found, n.msg)
		}
		for name, child := range n.children {
			if root && strings.HasPrefix(name, "$") {
				continue
			}
			collectAll(child, found)
		}
	case "+":
		for name, child := range n.children {
			if root && strings.HasPrefix(name, "$") {
				continue
			}
			collectNext(child, rest, more, found)
		}
	default:
		if child := n.children[level]; child != nil {
			collectNext(child, rest, more, found)
		}
	}
}

func collectNext(child *topicNode, rest string, more bool, found *[]*message) {
	if more {
		collectRetained(child, rest, false, found)
	} else if child.msg != nil {
		*found = append(*found, child.msg)
	}
}

func collectAll(n *topicNode, found *[]*message) {
	if n.msg != nil {
		*found = append(*found, n.msg)
	}
	for _, child := range n.children {
		collectAll(child, found)
	}
}
