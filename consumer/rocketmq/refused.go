package rocketmq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/presenced/presenced/presence"
)

// TagRefused is the tag of refused connects ("presenced broker" sends them
// to the events topic; "presenced consumer" stores them). They share the
// events topic, as node reports do, because the consumer subscribes it
// already and managed RocketMQ offerings make every topic a provisioning
// step; the tag keeps them away from subscribers of the lifecycle tags
// only, and the store's lifecycle path never sees them.
const TagRefused = "refused"

// Bounds of a refused connect accepted from the topic: anyone who can
// write to it could otherwise fill the store with long strings.
const (
	maxRefusedBytes     = 4 << 10
	maxRefusedFieldRune = 512
)

// SendRefused publishes refused connects to topic, in one request, tag
// "refused", keys = client id. Nothing is retried: refused connects were
// acknowledged to no one, and a lost one only leaves a gap in an
// explanation (the caller counts it).
func (p *Publisher) SendRefused(ctx context.Context, topic string, refused []presence.RefusedConnect) error {
	if len(refused) == 0 {
		return nil
	}
	msgs := make([]*primitive.Message, 0, len(refused))
	for _, rc := range refused {
		body, err := json.Marshal(rc)
		if err != nil {
			return fmt.Errorf("encode refused connect: %w", err)
		}
		msg := primitive.NewMessage(topic, body)
		msg.WithTag(TagRefused)
		msg.WithKeys([]string{rc.ClientID})
		msgs = append(msgs, msg)
	}
	return p.send(ctx, msgs...)
}

// DecodeRefused decodes and checks a refused connect from the topic.
func DecodeRefused(body []byte) (presence.RefusedConnect, error) {
	var rc presence.RefusedConnect
	if len(body) > maxRefusedBytes {
		return rc, fmt.Errorf("refused connect of %d bytes, at most %d", len(body), maxRefusedBytes)
	}
	if err := json.Unmarshal(body, &rc); err != nil {
		return rc, fmt.Errorf("decode refused connect: %w", err)
	}
	var errs []error
	if err := presence.ValidateClientID(rc.ClientID); err != nil {
		errs = append(errs, err)
	}
	if rc.ReturnCode < 1 || rc.ReturnCode > 5 {
		errs = append(errs, fmt.Errorf("returnCode %d is not a refusing CONNACK code (1-5)", rc.ReturnCode))
	}
	if rc.Time <= 0 {
		errs = append(errs, errors.New("refused connect needs time"))
	}
	for name, v := range map[string]string{"reason": rc.Reason, "clientIp": rc.ClientIP, "username": rc.Username, "node": rc.Node} {
		if n := len([]rune(v)); n > maxRefusedFieldRune {
			errs = append(errs, fmt.Errorf("%s of %d characters, at most %d", name, n, maxRefusedFieldRune))
		}
	}
	return rc, errors.Join(errs...)
}
