package webhook

import (
	"context"
	"fmt"

	"github.com/presenced/presenced/presence"
)

// Change is one client presence change as a hook receives it: the state
// of the client after the change, with the channel that caused it as the
// evidence.
type Change struct {
	// ID is the change's delivery id, "<hook>-<seq>": the same in every
	// attempt and after a restart, so a receiver can drop duplicates.
	ID       string `json:"id"`
	Seq      int64  `json:"seq"`
	ClientID string `json:"clientId"`
	// State is "online", "offline" or "unknown" (the client's broker node
	// is silent: see NodeChange).
	State  string `json:"state"`
	Online bool   `json:"online"`
	// The channel whose change this is; empty in a node change.
	ChannelID  string          `json:"channelId,omitempty"`
	Node       string          `json:"node,omitempty"`
	Epoch      string          `json:"epoch,omitempty"`
	ClientIP   string          `json:"clientIp,omitempty"`
	Reason     presence.Reason `json:"reason,omitempty"`
	ConnectAt  int64           `json:"connectAt,omitempty"`  // ms, broker time
	TCPCleanAt int64           `json:"tcpcleanAt,omitempty"` // ms, broker time
	// Cause (node_silent, node_back), SilentNode and SilentSince (ms, the
	// store's clock) say that a silent broker node made the change: the
	// client is unknown because its open channels are all on silent nodes,
	// or online again because the node came back. A node change has no
	// channel: Node and Epoch are the silent node's. A channel change
	// that leaves the client unknown (its last channel on a live node
	// closed) names the channel, and the silent node in SilentNode.
	Cause       string `json:"cause,omitempty"`
	SilentNode  string `json:"silentNode,omitempty"`
	SilentSince int64  `json:"silentSince,omitempty"`
	// Time is the broker time of the channel's newest event (ms); in a
	// node change, the store's time of the decision.
	Time int64 `json:"time"`
}

// Delivery is the JSON body of one POST: a batch of changes, oldest first.
type Delivery struct {
	Hook string `json:"hook"`
	// ID is "<hook>-<first seq>-<last seq>", also sent as the
	// X-Presenced-Delivery header; a retried batch carries the same.
	ID      string   `json:"id"`
	Changes []Change `json:"changes"`
}

// changeID is a change's delivery id: a feed seq is one stored event, so
// hook and seq name the change wherever and whenever it is delivered.
func changeID(hook string, seq int64) string { return fmt.Sprintf("%s-%d", hook, seq) }

func newDelivery(hook string, changes []Change) Delivery {
	return Delivery{Hook: hook, Changes: changes,
		ID: fmt.Sprintf("%s-%d-%d", hook, changes[0].Seq, changes[len(changes)-1].Seq)}
}

// presenceChanges turns channel states read from the feed after seq
// afterSeq into the client presence changes they caused, in feed order.
// Which other channels a client had open at each change, and on which
// node, is asked of the store (one query per batch, by the seqs where
// channels begin and end), so nothing per client is held here. The
// client's state before and after the change is the API's: online with
// an open channel on a live node, unknown with open channels all on
// silent nodes (spells), offline with none; a change is sent when the two
// differ. So a channel that opened while no other channel of its client
// was open brings the client online; one that closed while no other was
// open takes it offline — unless the close is a takeover with a
// successor. A second channel, a DISCONNECT packet, and a takeover in
// particular (the store stores the successor's connect before the old
// channel's close, and the client was never offline) send nothing. While
// a node is silent, a client's last channel on a live node closing leaves
// it unknown, and a channel opening on a live node makes it online again.
//
// The feed gives each channel in its current state: a connection that
// opened and closed between two reads arrives as one offline change that
// carries both connectAt and tcpcleanAt.
func presenceChanges(ctx context.Context, hook string, afterSeq int64, states []presence.ChannelState, spells spellIndex, around ChannelsAroundFunc) ([]Change, error) {
	if len(states) == 0 {
		return nil, nil
	}
	clients := make([]string, 0, len(states))
	seen := make(map[string]bool, len(states))
	for _, s := range states {
		if !seen[s.ClientID] {
			seen[s.ClientID] = true
			clients = append(clients, s.ClientID)
		}
	}
	channels, err := around(ctx, clients, afterSeq, states[len(states)-1].Seq)
	if err != nil {
		return nil, err
	}
	byClient := make(map[string][]ChannelSeqs, len(clients))
	for _, c := range channels {
		byClient[c.ClientID] = append(byClient[c.ClientID], c)
	}
	var changes []Change
	for _, s := range states {
		if !changesPresence(s) {
			continue
		}
		others := byClient[s.ClientID]
		if !s.Open && s.Reason == presence.ReasonTakeover && successorOf(others, s) {
			continue // the client stays online on the channel that took over
		}
		rest, restSpell := spells.othersState(others, s)
		self, selfSpell := spells.stateOn(s.Node, s.Seq)
		before, after := rest, max(rest, self)
		if !s.Open {
			before, after = max(rest, self), rest
		}
		if before == after {
			continue // e.g. online, and staying so, through another channel
		}
		c := newChange(hook, s)
		if after == stateUnknown {
			spell := restSpell
			if rest != stateUnknown {
				spell = selfSpell
			}
			c.State, c.Online = string(presence.StateUnknown), false
			c.Cause, c.SilentNode, c.SilentSince = CauseNodeSilent, spell.Node, spell.SilentSince
		}
		changes = append(changes, c)
	}
	return changes, nil
}

// changesPresence reports whether the newest event of a channel can have
// changed its client's presence: an open channel's connect (not a later
// DISCONNECT packet, which closes nothing), a closed channel's tcpclean
// after a connect (a tcpclean reordered before its connect never had
// the client online).
func changesPresence(s presence.ChannelState) bool {
	if s.Open {
		return s.LastEventAt <= s.ConnectAt
	}
	return s.ConnectAt > 0 && s.TCPCleanAt > 0
}

// clientState is a client's presence as the API answers it, ordered so
// that the state of several channels is the greatest of theirs.
type clientState int

const (
	stateOffline clientState = iota
	stateUnknown
	stateOnline
)

// spellIndex holds the silent spells of a batch by node.
type spellIndex map[string][]SilentSpell

func newSpellIndex(spells []SilentSpell) spellIndex {
	x := make(spellIndex, len(spells))
	for _, sp := range spells {
		x[sp.Node] = append(x[sp.Node], sp)
	}
	return x
}

// stateOn is what an open channel on node at seq makes its client:
// unknown while the node is silent (with the spell), else online. The
// spells come from the same seq space, so this is decided the same way at
// every attempt.
func (x spellIndex) stateOn(node string, seq int64) (clientState, SilentSpell) {
	for _, sp := range x[node] {
		if sp.StartSeq < seq && (sp.EndSeq == 0 || sp.EndSeq > seq) {
			return stateUnknown, sp
		}
	}
	return stateOnline, SilentSpell{}
}

// othersState is the state the client's other channels open at the change
// s give it: open at s means begun before it and open still or ended after.
func (x spellIndex) othersState(channels []ChannelSeqs, s presence.ChannelState) (clientState, SilentSpell) {
	state, spell := stateOffline, SilentSpell{}
	for _, c := range channels {
		if c.ChannelID == s.ChannelID || c.FirstSeq >= s.Seq || (!c.Open && c.LastSeq <= s.Seq) {
			continue
		}
		st, sp := x.stateOn(c.Node, s.Seq)
		if st == stateOnline {
			return stateOnline, SilentSpell{}
		}
		state, spell = st, sp
	}
	return state, spell
}

// successorOf reports whether another channel of the client began after s.
func successorOf(channels []ChannelSeqs, s presence.ChannelState) bool {
	for _, c := range channels {
		if c.ChannelID != s.ChannelID && c.FirstSeq > s.Seq {
			return true
		}
	}
	return false
}

func newChange(hook string, s presence.ChannelState) Change {
	c := Change{ID: changeID(hook, s.Seq), Seq: s.Seq, ClientID: s.ClientID, State: string(presence.StateOffline), Online: s.Open,
		ChannelID: s.ChannelID, Node: s.Node, Epoch: s.Epoch, ClientIP: s.ClientIP, Reason: s.Reason,
		ConnectAt: s.ConnectAt, TCPCleanAt: s.TCPCleanAt, Time: s.LastEventAt}
	if s.Open {
		c.State = string(presence.StateOnline)
	}
	return c
}
