package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/api"
	"github.com/presenced/presenced/consumer/rocketmq"
	"github.com/presenced/presenced/mqttbroker"
	"github.com/presenced/presenced/presence"
)

// kickCommandTTL is how long a kick command stays good after the API sent
// it (or the kick wait, if longer), by the receiving broker's clock: long enough for a slow RocketMQ and
// modest clock skew, short enough that a broker starting or catching up
// never acts on yesterday's commands (it also acts only on a channel it
// holds, which a restarted broker never does).
const kickCommandTTL = 10 * time.Second

// scaleOutKicker is presenced api's Kicker: the client's open channels
// come from the store, one command per channel goes to the control topic
// (every broker receives it, the named node acts), and the evidence is
// the store's: the channel closed with reason api_disconnect.
type scaleOutKicker struct {
	channels func(ctx context.Context, clientID string, limit int) ([]presence.Channel, error)
	send     func(ctx context.Context, k rocketmq.KickCommand) error
	wait     time.Duration // most time spent waiting for the evidence
	now      func() time.Time
}

// maxKickedChannels bounds the commands of one kick: a client has one
// open channel, a few at most while a node's stale ones await fencing.
const maxKickedChannels = 16

func (k *scaleOutKicker) Kick(ctx context.Context, clientID string, discardWill bool) (api.KickResult, bool, error) {
	all, err := k.channels(ctx, clientID, maxKickedChannels)
	if err != nil {
		return api.KickResult{}, false, err
	}
	open := slices.DeleteFunc(all, func(c presence.Channel) bool { return !c.Open })
	if len(open) == 0 {
		return api.KickResult{}, false, nil
	}
	issued := k.now()
	for _, c := range open {
		cmd := rocketmq.KickCommand{CommandID: newCommandID(), ClientID: clientID, ChannelID: c.ChannelID, Node: c.Node,
			DiscardWill: discardWill, IssuedAt: issued.UnixMilli(), ExpiresAt: issued.Add(max(kickCommandTTL, k.wait)).UnixMilli()}
		if err := k.send(ctx, cmd); err != nil {
			return api.KickResult{}, false, fmt.Errorf("send the kick command for channel %s: %w", c.ChannelID, err)
		}
	}
	return k.awaitEvidence(ctx, clientID, open), true, nil
}

// awaitEvidence polls the store until every kicked channel shows closed,
// or the wait (within the request's deadline) ends.
func (k *scaleOutKicker) awaitEvidence(ctx context.Context, clientID string, kicked []presence.Channel) api.KickResult {
	wait := k.wait
	if deadline, ok := ctx.Deadline(); ok {
		// Leave time to answer before the request's own timeout.
		wait = min(wait, time.Until(deadline)-250*time.Millisecond)
	}
	waitCtx, cancel := context.WithTimeout(ctx, max(wait, 0))
	defer cancel()
	backoff := presence.Backoff{Min: 20 * time.Millisecond, Max: 250 * time.Millisecond}
	state := map[string]presence.Channel{}
	for {
		if now, err := k.channels(waitCtx, clientID, maxKickedChannels); err == nil {
			for _, c := range now {
				state[c.ChannelID] = c
			}
		}
		res, settled := kickOutcome(kicked, state)
		if settled {
			return res
		}
		if backoff.Wait(waitCtx) != nil {
			res.Detail = fmt.Sprintf("no node acknowledged within %v: the store does not show the connection closed yet — the node may be down or the command still on its way", wait.Round(time.Millisecond))
			return res
		}
	}
}

// kickOutcome reads the kicked channels' state: settled once each is
// closed (with reason api_disconnect, or closed otherwise meanwhile).
func kickOutcome(kicked []presence.Channel, state map[string]presence.Channel) (api.KickResult, bool) {
	res := api.KickResult{ChannelID: kicked[0].ChannelID, Node: kicked[0].Node, Acknowledged: true}
	settled := true
	for _, c := range kicked {
		now, seen := state[c.ChannelID]
		closed := seen && !now.Open
		acked := closed && now.Reason == presence.ReasonAPIDisconnect
		if closed && !acked {
			res.Detail = fmt.Sprintf("channel %s closed meanwhile with reason %s", c.ChannelID, now.Reason)
		}
		settled = settled && closed
		res.Acknowledged = res.Acknowledged && acked
		if len(kicked) > 1 {
			res.Channels = append(res.Channels, api.KickedChannel{ChannelID: c.ChannelID, Node: c.Node, Acknowledged: acked})
		}
	}
	return res, settled
}

func newCommandID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// nodeKicks acts on the control topic's kick commands on one broker node:
// only commands naming this node, and only while the channel is still one
// this broker holds — a late command never closes the client's next
// connection. (Between that check and the kick a takeover could slip in;
// the window is the length of a map lookup, and the kick of the newer
// channel is logged.)
type nodeKicks struct {
	node   string
	broker *mqttbroker.Server
	log    *slog.Logger

	control                            *rocketmq.ControlConsumer // for its counters
	kicked, otherNode, notHere, failed atomic.Uint64
}

func (n *nodeKicks) kick(ctx context.Context, k rocketmq.KickCommand) {
	if k.Node != n.node {
		n.otherNode.Add(1)
		return
	}
	if !slices.Contains(n.broker.OpenChannels(), k.ChannelID) {
		n.notHere.Add(1)
		n.log.Info("kick command for a channel this node does not hold (closed already, or replaced)", "command", k.CommandID, "client", k.ClientID, "channel", k.ChannelID)
		return
	}
	channelID, ok, err := n.broker.Kick(ctx, k.ClientID, k.DiscardWill)
	switch {
	case !ok:
		n.notHere.Add(1)
	case err != nil:
		n.failed.Add(1)
		n.log.Warn("kicked connection did not finish closing in time", "command", k.CommandID, "client", k.ClientID, "channel", channelID, "err", err)
	default:
		n.kicked.Add(1)
		if channelID != k.ChannelID {
			n.log.Warn("kick command closed a newer connection of the client (it took over while the command was checked)", "command", k.CommandID, "client", k.ClientID, "wanted", k.ChannelID, "closed", channelID)
		}
		n.log.Info("connection closed by a kick command", "command", k.CommandID, "client", k.ClientID, "channel", channelID)
	}
}

var kickCommandsDesc = prometheus.NewDesc("presenced_kick_commands_total",
	"Kick commands received on the control topic, by result: kicked, other_node (for another broker), not_here (channel not held here), failed (close did not finish), expired (past expiresAt, ignored), invalid (not a command).",
	[]string{"result"}, nil)

func (n *nodeKicks) Describe(ch chan<- *prometheus.Desc) { ch <- kickCommandsDesc }

func (n *nodeKicks) Collect(ch chan<- prometheus.Metric) {
	for result, v := range map[string]uint64{"kicked": n.kicked.Load(), "other_node": n.otherNode.Load(), "not_here": n.notHere.Load(),
		"failed": n.failed.Load(), "expired": n.control.Stats.Expired.Load(), "invalid": n.control.Stats.Invalid.Load()} {
		ch <- prometheus.MustNewConstMetric(kickCommandsDesc, prometheus.CounterValue, float64(v), result)
	}
}

// newAPIKicker is presenced api's Kicker: through RocketMQ when it is
// configured, else none (the API answers 501).
func newAPIKicker(cfg config, db *database, life *lifecycle) (api.Kicker, error) {
	if !cfg.RocketMQ.enabled() {
		return nil, nil
	}
	publisher, err := startPublisher(cfg.RocketMQ, life)
	if err != nil {
		return nil, err
	}
	return &scaleOutKicker{
		channels: db.store.Channels,
		send: func(ctx context.Context, k rocketmq.KickCommand) error {
			return publisher.SendKick(ctx, cfg.RocketMQ.ControlTopic, k)
		},
		wait: cfg.RocketMQ.KickWait,
		now:  time.Now,
	}, nil
}
