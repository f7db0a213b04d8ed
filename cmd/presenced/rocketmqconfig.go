package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// rocketmqConfig is the transport of the scaled-out modes: `presenced
// broker` sends lifecycle events (and refused connects) to RocketMQ,
// `presenced consumer` applies them to the store; `presenced api` sends
// kick commands on the control topic, which every broker receives.
type rocketmqConfig struct {
	NameServers    string // comma-separated ip:port (host names are resolved)
	Topic          string
	PerGroupTopics bool   // Alibaba's convention: <GroupId>_MQTT per client group
	ConsumeTopics  string // comma-separated topics the consumer subscribes (default: Topic)
	ConsumerGroup  string
	ProducerGroup  string
	AccessKey      string // never logged
	SecretKey      string // never logged; or read from SecretKeyFile
	SecretKeyFile  secretFile
	ControlTopic   string        // kick commands, api → every broker
	ControlGroup   string        // the brokers' broadcasting consumer group
	KickWait       time.Duration // how long the api waits for a kick's evidence
	// optional: the mode runs without RocketMQ when no name server is
	// given (presenced api: DELETE /clients/{id}/connection answers 501).
	optional bool
}

func (e *envFlags) Bool(p *bool, name string, def bool, usage string) {
	if v := e.getenv(envName(name)); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s=%q is not true or false", envName(name), v))
		} else {
			def = b
		}
	}
	e.fs.BoolVar(p, name, def, usage+" ("+envName(name)+")")
}

func registerRocketMQFlags(offer func(flagName string) *envFlags, c *rocketmqConfig) {
	f := offer("") // the flags every RocketMQ command uses
	f.String(&c.NameServers, "rocketmq-namesrv", "", "RocketMQ name server addresses, comma-separated ip:port")
	offer("rocketmq-topic").String(&c.Topic, "rocketmq-topic", "presenced_events", "RocketMQ topic of lifecycle and node events")
	offer("rocketmq-per-group-topics").Bool(&c.PerGroupTopics, "rocketmq-per-group-topics", false, "send each client's events to <GroupId>_MQTT (Alibaba's convention; GroupId is the client id before @@@); node events and clients without a group use --rocketmq-topic")
	offer("rocketmq-consume-topics").String(&c.ConsumeTopics, "rocketmq-consume-topics", "", "topics the consumer subscribes, comma-separated (default: --rocketmq-topic); list every <GroupId>_MQTT with per-group topics")
	offer("rocketmq-consumer-group").String(&c.ConsumerGroup, "rocketmq-consumer-group", "GID_presenced", "RocketMQ consumer group shared by every presenced consumer of one store")
	offer("rocketmq-producer-group").String(&c.ProducerGroup, "rocketmq-producer-group", "GID_presenced_broker", "RocketMQ producer group of presenced brokers")
	f.Secret(&c.AccessKey, "rocketmq-access-key", "RocketMQ ACL access key")
	f.Secret(&c.SecretKey, "rocketmq-secret-key", "RocketMQ ACL secret key (never logged); prefer --rocketmq-secret-key-file")
	offer("rocketmq-control-topic").String(&c.ControlTopic, "rocketmq-control-topic", "presenced_control", "RocketMQ topic of kick commands from presenced api to every presenced broker (broadcast)")
	offer("rocketmq-control-group").String(&c.ControlGroup, "rocketmq-control-group", "GID_presenced_control", "RocketMQ consumer group of the brokers on --rocketmq-control-topic (broadcasting: each broker gets every command)")
	offer("rocketmq-kick-wait").Duration(&c.KickWait, "rocketmq-kick-wait", 2*time.Second, "presenced api: how long DELETE /clients/{id}/connection waits for the store to show the connection closed before answering acknowledged:false (within --api-request-timeout)")
	c.SecretKeyFile = secretFile{into: &c.SecretKey, intoFlag: "rocketmq-secret-key"}
	f.File(&c.SecretKeyFile, "rocketmq-secret-key-file", "file holding the RocketMQ ACL secret key, so it is not on the command line (trailing whitespace ignored)")
}

// validate checks the transport settings of a mode that needs them.
func (c rocketmqConfig) validate() error {
	var errs []error
	if len(c.nameServers()) == 0 && !c.optional {
		errs = append(errs, errors.New("--rocketmq-namesrv is required in this mode"))
	}
	if c.Topic == "" {
		errs = append(errs, errors.New("--rocketmq-topic must not be empty"))
	}
	if c.ControlTopic == "" || c.ControlGroup == "" {
		errs = append(errs, errors.New("--rocketmq-control-topic and --rocketmq-control-group must not be empty"))
	}
	if c.KickWait <= 0 || c.KickWait > time.Minute {
		errs = append(errs, fmt.Errorf("--rocketmq-kick-wait must be within (0, 1m], not %v", c.KickWait))
	}
	if c.SecretKeyFile.conflicts() {
		errs = append(errs, errors.New("--rocketmq-secret-key and --rocketmq-secret-key-file are both set; give the secret one way only"))
	}
	return errors.Join(errs...)
}

func (c rocketmqConfig) nameServers() []string { return splitList(c.NameServers) }

// enabled says RocketMQ is configured (always so where it is required).
func (c rocketmqConfig) enabled() bool { return len(c.nameServers()) > 0 }

// consumeTopics is what the consumer subscribes.
func (c rocketmqConfig) consumeTopics() []string {
	if topics := splitList(c.ConsumeTopics); len(topics) > 0 {
		return topics
	}
	return []string{c.Topic}
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
