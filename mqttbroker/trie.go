package mqttbroker

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// subscriptionTree indexes subscriptions by topic filter level, so routing
// a message costs the depth of its topic, not the number of subscriptions.
type subscriptionTree struct {
	mu   sync.RWMutex
	root *filterNode
	// count is the subscriptions held, a session's filter each (changed
	// under mu; read without it for Config.MaxSubscriptionsTotal).
	count atomic.Int64
}

type filterNode struct {
	children map[string]*filterNode // by level; "+" and "#" are ordinary keys
	subs     map[*session]byte      // sessions subscribed to the filter ending here
	shared   map[string]*shareGroup // MQTT 5.0 shared subscriptions of the filter, by share name
}

// shareGroup is the sessions of one shared subscription,
// $share/{name}/{filter} [MQTT-4.8.2]: each message goes to one of them,
// in turn.
type shareGroup struct {
	members []shareMember
	next    atomic.Uint32 // round robin; advanced under the tree's read lock
}

type shareMember struct {
	sess  *session
	grant byte
}

// optShared marks, in the grant a session keeps for a filter, a v5 shared
// subscription (the filter is $share/{name}/{filter}); never on the wire.
const optShared = 0x80

// splitShared splits a shared subscription's filter into its share name
// and the filter proper.
func splitShared(filter string) (name, inner string) {
	rest := strings.TrimPrefix(filter, "$share/")
	name, inner, _ = strings.Cut(rest, "/")
	return name, inner
}

func (t *subscriptionTree) init() { t.root = &filterNode{} }

// add subscribes sess to filter at qos, replacing an earlier QoS. With
// optShared in qos, filter is a shared subscription's.
func (t *subscriptionTree) add(filter string, sess *session, qos byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var share string
	if qos&optShared != 0 {
		share, filter = splitShared(filter)
	}
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
	if share != "" {
		if n.addShared(share, sess, qos) {
			t.count.Add(1)
		}
		return
	}
	if n.subs == nil {
		n.subs = make(map[*session]byte)
	}
	if _, replaced := n.subs[sess]; !replaced {
		t.count.Add(1)
	}
	n.subs[sess] = qos
}

// addShared adds sess to the share group, or changes its grant; it reports
// whether sess is a new member.
func (n *filterNode) addShared(share string, sess *session, grant byte) (added bool) {
	g := n.shared[share]
	if g == nil {
		if n.shared == nil {
			n.shared = make(map[string]*shareGroup)
		}
		g = &shareGroup{}
		n.shared[share] = g
	}
	for i := range g.members {
		if g.members[i].sess == sess {
			g.members[i].grant = grant
			return false
		}
	}
	g.members = append(g.members, shareMember{sess, grant})
	return true
}

// remove unsubscribes sess from filter and prunes nodes left empty;
// shared says filter is a shared subscription's (see add).
func (t *subscriptionTree) remove(filter string, sess *session, shared bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var share string
	if shared {
		share, filter = splitShared(filter)
	}
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
	if share == "" {
		if _, ok := n.subs[sess]; ok {
			delete(n.subs, sess)
			t.count.Add(-1)
		}
	} else if g := n.shared[share]; g != nil {
		before := len(g.members)
		g.members = slices.DeleteFunc(g.members, func(m shareMember) bool { return m.sess == sess })
		t.count.Add(int64(len(g.members) - before))
		if len(g.members) == 0 {
			delete(n.shared, share)
		}
	}
	for i := len(levels) - 1; i >= 0; i-- {
		node := path[i+1]
		if len(node.subs) > 0 || len(node.children) > 0 || len(node.shared) > 0 {
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
	for _, g := range n.shared {
		// One member of each shared subscription, in turn [MQTT-4.8.2-4].
		m := g.members[int(g.next.Add(1)-1)%len(g.members)]
		visit(m.sess, m.grant)
	}
}
