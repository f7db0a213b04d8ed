package rocketmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// KickFunc acts on a kick command that has not expired. It decides itself
// whether the command is for this node and channel.
type KickFunc func(ctx context.Context, k KickCommand)

// ControlConfig configures a ControlConsumer.
type ControlConfig struct {
	NameServers []string
	// Group is the consumer group of every broker node; with
	// broadcasting consumption each member receives every command.
	Group string
	// Topic is the control topic.
	Topic string
	// InstanceName must be unique per client; the default is unique.
	InstanceName string
	// AccessKey and SecretKey authenticate to brokers with ACLs. Never logged.
	AccessKey, SecretKey string
	// KickTimeout bounds one Kick call (default 10 s).
	KickTimeout time.Duration
	Kick        KickFunc
	Now         func() time.Time
	Log         *slog.Logger
}

// ControlStats are the control consumer's counters, for metrics.
type ControlStats struct {
	Received atomic.Uint64 // commands handed to Kick
	Expired  atomic.Uint64 // commands past their expiry, ignored
	Invalid  atomic.Uint64 // messages that are no valid command, ignored
}

// ControlConsumer receives the commands of the control topic on a broker
// node: a broadcasting push consumer, so every node sees every command.
// It starts reading about when it starts (up to two seconds before: the
// position is found by a store timestamp to the second), so a new or
// restarted node does not go through old commands, and it drops commands
// past their expiry whatever their position; the caller's Kick still
// checks that the channel is one it holds. Nothing is redelivered: a broadcasting
// consumer has no retry topic, and a kick that failed is the operator's
// to repeat.
type ControlConsumer struct {
	cfg   ControlConfig
	log   *slog.Logger
	Stats ControlStats
}

// NewControlConsumer checks cfg and returns a ControlConsumer. Call Run.
func NewControlConsumer(cfg ControlConfig) (*ControlConsumer, error) {
	if cfg.Kick == nil {
		return nil, errors.New("new control consumer: Kick is required")
	}
	if len(cfg.NameServers) == 0 {
		return nil, errors.New("new control consumer: no name server address")
	}
	if err := checkName("consumer group", cfg.Group); err != nil {
		return nil, fmt.Errorf("new control consumer: %w", err)
	}
	if err := checkName("topic", cfg.Topic); err != nil {
		return nil, fmt.Errorf("new control consumer: %w", err)
	}
	if cfg.InstanceName == "" {
		cfg.InstanceName = uniqueInstanceName("control")
	}
	if cfg.KickTimeout <= 0 {
		cfg.KickTimeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &ControlConsumer{cfg: cfg, log: cfg.Log.With("component", "rocketmq-control", "topic", cfg.Topic)}, nil
}

// Run consumes commands until ctx ends. Starting is retried while the
// topic has no route (on a real RocketMQ: until the topic is created or
// the first command is sent).
func (c *ControlConsumer) Run(ctx context.Context) error {
	addrs, err := ResolveNameServers(ctx, c.cfg.NameServers)
	if err != nil {
		return fmt.Errorf("rocketmq control consumer: %w", err)
	}
	pc, err := startRetrying(ctx, c.log, func() (pushConsumer, error) {
		pc, err := c.newPushConsumer(addrs)
		if err != nil {
			return nil, err
		}
		if err := pc.Subscribe(c.cfg.Topic, consumer.MessageSelector{Type: consumer.TAG, Expression: TagKick}, c.callback(ctx)); err != nil {
			pc.Shutdown()
			return nil, fmt.Errorf("rocketmq control consumer: subscribe %s: %w", c.cfg.Topic, err)
		}
		return pc, nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	c.log.Info("receiving commands from rocketmq", "group", c.cfg.Group, "instance", c.cfg.InstanceName)
	c.removeStaleOffsets()
	<-ctx.Done()
	if err := pc.Shutdown(); err != nil {
		c.log.Warn("rocketmq control consumer shutdown", "err", err)
	}
	c.removeLocalOffsets()
	return nil
}

func (c *ControlConsumer) newPushConsumer(addrs []string) (pushConsumer, error) {
	// Offsets are not worth keeping: a command is only good for seconds,
	// so each start reads from its own start time (RocketMQ's store time:
	// the real clock, not Now). The client parses it as UTC, to the second.
	from := time.Now().Add(-time.Second).UTC().Format("20060102150405")
	opts := []consumer.Option{
		consumer.WithNameServer(addrs),
		consumer.WithGroupName(c.cfg.Group),
		consumer.WithInstance(c.cfg.InstanceName),
		consumer.WithConsumerModel(consumer.BroadCasting),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromTimestamp),
		consumer.WithConsumeTimestamp(from),
		// Commands are a few hundred bytes and rare: the client's defaults
		// (1,024 messages and 512 MiB held per queue) are for data topics.
		consumer.WithPullThresholdForQueue(64),
		consumer.WithPullThresholdSizeForQueue(1),
	}
	if c.cfg.AccessKey != "" {
		opts = append(opts, consumer.WithCredentials(primitive.Credentials{AccessKey: c.cfg.AccessKey, SecretKey: c.cfg.SecretKey}))
	}
	pc, err := consumer.NewPushConsumer(opts...)
	if err != nil {
		return nil, fmt.Errorf("rocketmq control consumer: %w", err)
	}
	return pc, nil
}

func (c *ControlConsumer) callback(ctx context.Context) func(context.Context, ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
	return func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		for _, m := range msgs {
			c.handle(ctx, m.Body)
		}
		return consumer.ConsumeSuccess, nil
	}
}

// handle checks one command and hands it to Kick.
func (c *ControlConsumer) handle(ctx context.Context, body []byte) {
	k, err := DecodeKick(body)
	switch {
	case err != nil:
		c.Stats.Invalid.Add(1)
		c.log.Warn("ignored a control message that is not a valid kick command", "err", err)
	case k.Expired(c.cfg.Now()):
		c.Stats.Expired.Add(1)
		c.log.Info("ignored an expired kick command", "command", k.CommandID, "client", k.ClientID, "node", k.Node,
			"expiredAt", time.UnixMilli(k.ExpiresAt).UTC())
	default:
		c.Stats.Received.Add(1)
		kctx, cancel := context.WithTimeout(ctx, c.cfg.KickTimeout)
		c.cfg.Kick(kctx, k)
		cancel()
	}
}

// Local offsets: the client keeps a broadcasting consumer's offsets in
// <dir>/<group>/<ip>@<instance>/offset.json, dir being
// $HOME/.rocketmq_client_go (or the environment variable
// rocketmq.client.localOffsetStoreDir, read when the process starts).
// The instance name is unique per start, so Run removes its own at the
// end, and at start those a killed process left: a live consumer rewrites
// its file every 5 s, so one untouched for staleOffsets is nobody's.
const staleOffsets = 10 * time.Minute

func (c *ControlConsumer) localOffsetsDir() string {
	dir := os.Getenv("rocketmq.client.localOffsetStoreDir")
	if dir == "" {
		dir = filepath.Join(os.Getenv("HOME"), ".rocketmq_client_go")
	}
	return filepath.Join(dir, c.cfg.Group)
}

// removeLocalOffsets deletes this consumer's offsets file, and the
// group's directory when nothing else is left in it.
func (c *ControlConsumer) removeLocalOffsets() {
	groupDir := c.localOffsetsDir()
	matches, _ := filepath.Glob(filepath.Join(groupDir, "*@"+c.cfg.InstanceName))
	for _, m := range matches {
		if err := os.RemoveAll(m); err != nil {
			c.log.Debug("could not remove the control consumer's local offsets", "path", m, "err", err)
		}
	}
	_ = os.Remove(groupDir) // only when empty: other nodes on the host may use it
}

// removeStaleOffsets deletes the offsets of control consumers that were
// killed (their files untouched for staleOffsets).
func (c *ControlConsumer) removeStaleOffsets() {
	matches, _ := filepath.Glob(filepath.Join(c.localOffsetsDir(), "*@presenced-control-*"))
	for _, m := range matches {
		info, err := os.Stat(filepath.Join(m, "offset.json"))
		if err != nil {
			info, err = os.Stat(m) // no file yet: the directory's age
		}
		if err == nil && time.Since(info.ModTime()) > staleOffsets {
			_ = os.RemoveAll(m)
		}
	}
}
