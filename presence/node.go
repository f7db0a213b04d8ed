package presence

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
	Node  string        `json:"node"`
	Epoch string        `json:"epoch"`
	Type  NodeEventType `json:"eventType"`
	Time  int64         `json:"time"`
	// Seq orders the events of one epoch; it never relies on wall clocks.
	Seq uint64 `json:"seq"`
	// LeaseMillis is how long the node promises to heartbeat within.
	LeaseMillis int64 `json:"leaseMs,omitempty"`
	// Channels is set on NodeChannels: every channel id the node holds.
	Channels []string `json:"channels,omitempty"`
}
