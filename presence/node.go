package presence

import (
	"fmt"
	"time"
)

// NodeEventType is the kind of a broker node event: the node's own
// lifecycle, carried through the same transport as the client events.
type NodeEventType string

const (
	NodeStart     NodeEventType = "node_start"     // a broker process started with a new epoch
	NodeHeartbeat NodeEventType = "node_heartbeat" // the process is alive (periodic)
	NodeStop      NodeEventType = "node_stop"      // the process stopped cleanly
	// NodeChannels carries the complete set of channels the node holds,
	// for reconciliation.
	NodeChannels NodeEventType = "node_channels"
)

// NodeEvent is a broker node's report about itself.
type NodeEvent struct {
	Node  string `json:"node"`
	Epoch string `json:"epoch"`
	// Generation counts the starts of the node (persisted in its data
	// directory), so the consumer can tell which of two epochs is newer
	// even when their events arrive out of order; 0 when unknown.
	Generation uint64        `json:"generation,omitempty"`
	Type       NodeEventType `json:"eventType"`
	Time       int64         `json:"time"`
	// Seq orders the events of one epoch; it never relies on wall clocks.
	Seq uint64 `json:"seq"`
	// LeaseMillis is how long the node promises to heartbeat within.
	LeaseMillis int64 `json:"leaseMs,omitempty"`
	// Channels is set on NodeChannels: every channel id the node holds.
	Channels []string `json:"channels,omitempty"`
}

// Valid reports whether t is a known node event type.
func (t NodeEventType) Valid() bool {
	switch t {
	case NodeStart, NodeHeartbeat, NodeStop, NodeChannels:
		return true
	}
	return false
}

// MaxNodeChannels bounds the channel set of one report.
const MaxNodeChannels = 1_000_000

// Validate checks a node event and returns all problems found.
func (n NodeEvent) Validate() error {
	var problems Problems
	if n.Node == "" {
		problems = append(problems, FieldErrorf("node", "must not be empty"))
	} else {
		problems.Add(validateText("node", n.Node, MaxNodeBytes))
	}
	if n.Epoch == "" {
		problems = append(problems, FieldErrorf("epoch", "must not be empty"))
	} else {
		problems.Add(validateText("epoch", n.Epoch, MaxEpochBytes))
	}
	if !n.Type.Valid() {
		problems = append(problems, FieldErrorf("eventType", "%q is not one of node_start, node_heartbeat, node_stop, node_channels", Truncate(string(n.Type), 32)))
	}
	if n.LeaseMillis < 0 {
		problems = append(problems, FieldErrorf("leaseMs", "must not be negative"))
	}
	if len(n.Channels) > MaxNodeChannels {
		problems = append(problems, FieldErrorf("channels", "holds %d channels; at most %d are allowed", len(n.Channels), MaxNodeChannels))
	}
	for i, id := range n.Channels {
		if err := ValidateChannelID(id); err != nil {
			problems = append(problems, FieldProblem(fmt.Sprintf("channels[%d]", i), err))
			break
		}
	}
	return problems.Err()
}

// NodeState is what the store knows about a broker node.
type NodeState string

const (
	NodeAlive   NodeState = "alive"   // heartbeating within its lease
	NodeSilent  NodeState = "silent"  // missed its lease: its clients are "unknown"
	NodeLost    NodeState = "lost"    // silent past the grace period, or superseded: its channels were closed
	NodeStopped NodeState = "stopped" // stopped cleanly
)

// Node is a broker node as the store knows it.
type Node struct {
	Node          string     `json:"node"`
	Epoch         string     `json:"epoch"`
	Generation    uint64     `json:"generation,omitempty"`
	State         NodeState  `json:"state"`
	StartedAt     time.Time  `json:"startedAt"`
	LastHeartbeat time.Time  `json:"lastHeartbeat"` // the store's clock when the last node event was applied
	LeaseMillis   int64      `json:"leaseMs"`
	SilentSince   *time.Time `json:"silentSince,omitempty"`
	OpenChannels  int        `json:"openChannels"`
}
