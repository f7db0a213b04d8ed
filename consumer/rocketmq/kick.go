package rocketmq

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/presenced/presenced/presence"
)

// TagKick is the tag of kick commands on the control topic.
const TagKick = "kick"

// KickCommand asks the broker node Node to close the connection ChannelID
// of ClientID (DELETE /clients/{id}/connection in "presenced api"). Every
// broker receives every command (broadcasting consumption); only the named
// node acts, and only while ChannelID is still a connection it holds, so a
// command that arrives late never closes the client's next connection.
type KickCommand struct {
	CommandID   string `json:"commandId"`
	ClientID    string `json:"clientId"`
	ChannelID   string `json:"channelId"`
	Node        string `json:"node"`
	DiscardWill bool   `json:"discardWill"`
	IssuedAt    int64  `json:"issuedAt"`  // ms since the epoch, the API's clock
	ExpiresAt   int64  `json:"expiresAt"` // ms since the epoch; later the command is ignored
}

// Expired reports whether the command is past its expiry at now: a broker
// that starts (or catches up) late must not act on old commands.
func (k KickCommand) Expired(now time.Time) bool { return now.UnixMilli() > k.ExpiresAt }

// maxKickBytes bounds a command's body: real ones are a few hundred bytes.
const maxKickBytes = 4 << 10

// DecodeKick decodes and checks a kick command.
func DecodeKick(body []byte) (KickCommand, error) {
	var k KickCommand
	if len(body) > maxKickBytes {
		return k, fmt.Errorf("kick command of %d bytes, at most %d", len(body), maxKickBytes)
	}
	if err := json.Unmarshal(body, &k); err != nil {
		return k, fmt.Errorf("decode kick command: %w", err)
	}
	var errs []error
	if err := presence.ValidateClientID(k.ClientID); err != nil {
		errs = append(errs, err)
	}
	if k.ChannelID == "" || k.Node == "" || k.CommandID == "" {
		errs = append(errs, errors.New("kick command needs commandId, channelId and node"))
	}
	if k.ExpiresAt <= 0 {
		errs = append(errs, errors.New("kick command needs expiresAt"))
	}
	return k, errors.Join(errs...)
}

// kickMessage is the message of a command: keys = client id and channel
// id, so an operator can find a command in the console by either.
func kickMessage(topic string, k KickCommand) (*primitive.Message, error) {
	body, err := json.Marshal(k)
	if err != nil {
		return nil, fmt.Errorf("encode kick command: %w", err)
	}
	msg := primitive.NewMessage(topic, body)
	msg.WithTag(TagKick)
	msg.WithKeys([]string{k.ClientID, k.ChannelID})
	return msg, nil
}
