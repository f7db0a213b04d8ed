package rocketmq

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// NameServers are "host:port" addresses; host names are resolved on
	// the first send.
	NameServers []string
	// ProducerGroup names the producer group (default "presenced_broker").
	ProducerGroup string
	// InstanceName must be unique per client in the process; the default
	// is unique.
	InstanceName string
	// SendTimeout bounds one send request (default 3 s).
	SendTimeout time.Duration
	// AccessKey and SecretKey authenticate to brokers with ACLs. Never logged.
	AccessKey, SecretKey string
}

// Publisher sends the messages that are not lifecycle events — kick
// commands, refused connects — once each, best-effort: unlike the
// Forwarder it holds nothing durable and does not retry. A failed send is
// the caller's to report. Its producer starts on the first send, so a
// process that never sends never connects.
type Publisher struct {
	cfg PublisherConfig

	mu     sync.Mutex
	p      sender
	closed bool
}

// NewPublisher checks cfg and returns a Publisher. Close it.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if len(cfg.NameServers) == 0 {
		return nil, errors.New("new publisher: no name server address")
	}
	if cfg.ProducerGroup == "" {
		cfg.ProducerGroup = "presenced_broker"
	}
	if err := checkName("producer group", cfg.ProducerGroup); err != nil {
		return nil, fmt.Errorf("new publisher: %w", err)
	}
	if cfg.InstanceName == "" {
		cfg.InstanceName = uniqueInstanceName("publisher")
	}
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = 3 * time.Second
	}
	return &Publisher{cfg: cfg}, nil
}

func (p *Publisher) newProducer(addrs []string) (sender, error) {
	opts := []producer.Option{
		producer.WithNameServer(addrs),
		producer.WithGroupName(p.cfg.ProducerGroup),
		producer.WithInstanceName(p.cfg.InstanceName),
		producer.WithSendMsgTimeout(p.cfg.SendTimeout),
		// One immediate retry against another queue: these sends are
		// best-effort, a short blip should not lose a kick.
		producer.WithRetry(1),
	}
	if p.cfg.AccessKey != "" {
		opts = append(opts, producer.WithCredentials(primitive.Credentials{AccessKey: p.cfg.AccessKey, SecretKey: p.cfg.SecretKey}))
	}
	prod, err := producer.NewDefaultProducer(opts...)
	if err != nil {
		return nil, fmt.Errorf("new rocketmq producer: %w", err)
	}
	return prod, nil
}

// producer returns the started producer, starting it on first use.
func (p *Publisher) producer(ctx context.Context) (sender, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("publisher closed")
	}
	if p.p != nil {
		return p.p, nil
	}
	addrs, err := ResolveNameServers(ctx, p.cfg.NameServers)
	if err != nil {
		return nil, err
	}
	s, err := p.newProducer(addrs)
	if err != nil {
		return nil, err
	}
	if err := s.Start(); err != nil {
		return nil, fmt.Errorf("start rocketmq producer: %w", err)
	}
	p.p = s
	return s, nil
}

// send sends msgs (one topic) in one request.
func (p *Publisher) send(ctx context.Context, msgs ...*primitive.Message) error {
	s, err := p.producer(ctx)
	if err != nil {
		return err
	}
	res, err := s.SendSync(ctx, msgs...)
	if err != nil {
		return fmt.Errorf("send to rocketmq: %w", err)
	}
	if res.Status != primitive.SendOK {
		return fmt.Errorf("send to rocketmq: status %d", res.Status)
	}
	return nil
}

// SendKick publishes a kick command on the control topic.
func (p *Publisher) SendKick(ctx context.Context, topic string, k KickCommand) error {
	msg, err := kickMessage(topic, k)
	if err != nil {
		return err
	}
	return p.send(ctx, msg)
}

// Close shuts the producer down; later sends fail.
func (p *Publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.p == nil {
		return nil
	}
	return p.p.Shutdown()
}
