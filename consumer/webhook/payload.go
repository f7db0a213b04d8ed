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
	// State is "online" or "offline".
	State  string `json:"state"`
	Online bool   `json:"online"`
	// The channel whose change this is.
	ChannelID  string          `json:"channelId"`
	Node       string          `json:"node,omitempty"`
	Epoch      string          `json:"epoch,omitempty"`
	ClientIP   string          `json:"clientIp,omitempty"`
	Reason     presence.Reason `json:"reason,omitempty"`
	ConnectAt  int64           `json:"connectAt,omitempty"`  // ms, broker time
	TCPCleanAt int64           `json:"tcpcleanAt,omitempty"` // ms, broker time
	// Time is the broker time of the channel's newest event (ms).
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
// Which other channels a client had open at each change is asked of the
// store (one query per batch, by the seqs where channels begin and end),
// so nothing per client is held here. A channel that opened while no
// other channel of its client was open brought the client online; one
// that closed while no other was open took the client offline — unless
// the close is a takeover with a successor. Anything else changed no
// client's presence: a takeover in particular (the store stores the
// successor's connect before the old channel's close, and the client was
// never offline) sends nothing.
//
// The feed gives each channel in its current state: a connection that
// opened and closed between two reads arrives as one offline change that
// carries both connectAt and tcpcleanAt.
func presenceChanges(ctx context.Context, hook string, afterSeq int64, states []presence.ChannelState, around ChannelsAroundFunc) ([]Change, error) {
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
		if otherOpenAt(others, s) {
			continue // the client was online, and stays so, through another channel
		}
		if !s.Open && s.Reason == presence.ReasonTakeover && successorOf(others, s) {
			continue // the client stays online on the channel that took over
		}
		changes = append(changes, newChange(hook, s))
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

// otherOpenAt reports whether another of the client's channels was open
// at the change s: it began before s and is open still or ended after.
func otherOpenAt(channels []ChannelSeqs, s presence.ChannelState) bool {
	for _, c := range channels {
		if c.ChannelID != s.ChannelID && c.FirstSeq < s.Seq && (c.Open || c.LastSeq > s.Seq) {
			return true
		}
	}
	return false
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
