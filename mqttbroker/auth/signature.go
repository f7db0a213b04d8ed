package auth

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/presenced/presenced/mqttbroker"
	"github.com/presenced/presenced/presence"
)

// Signature implements Alibaba Cloud MQTT signature authentication
// (Micro Message Queue for MQTT, now ApsaraMQ for MQTT). Two user name
// forms are accepted:
//
//   - "AccessKeyId" alone, the form of older MQ for IoT client code:
//     password = Base64(HMAC-SHA1(SecretKey, GroupId)), where GroupId is the
//     client id before "@@@" (presence.GroupID), so every device of a group
//     sends the same password;
//   - "Signature|AccessKeyId|InstanceId", Alibaba's signature mode:
//     password = Base64(HMAC-SHA1(SecretKey, ClientId)) over the whole client
//     id ("GroupId@@@DeviceId"). InstanceId must be one of the configured
//     instance ids; with none configured this form is refused, so that a
//     deployment states which Alibaba instance it stands in for.
//
// Alibaba's other modes, "Token|AccessKeyId|InstanceId" (tokens issued by
// Alibaba's token service) and "DeviceCredential|DeviceAccessKeyId|InstanceId"
// (per-device credentials registered with Alibaba's API), need state
// presenced does not hold; they are refused with their own reason.
//
// Every refusal wraps mqttbroker.ErrBadCredentials (CONNACK 0x04); its text
// names the reason and never a password or secret. It is an
// mqttbroker.Authenticator.
type Signature struct {
	secrets   map[string][]byte   // AccessKeyId → SecretKey
	instances map[string]struct{} // instance ids "Signature|" may name
}

// Refusals of Alibaba-form user names, for the broker's log (the client
// only sees CONNACK 0x04). A user name that is in none of Alibaba's forms
// and no known AccessKeyId gets plain mqttbroker.ErrBadCredentials: it may
// well belong to another authenticator (see Any).
var (
	errMalformedUsername = fmt.Errorf(`%w: want "Signature|AccessKeyId|InstanceId", each part non-empty`, mqttbroker.ErrBadCredentials)
	errNoInstanceID      = fmt.Errorf(`%w: "Signature|" user name, but no Alibaba instance id is configured`, mqttbroker.ErrBadCredentials)
	errWrongInstance     = fmt.Errorf("%w: Alibaba instance id not served here", mqttbroker.ErrBadCredentials)
	errUnknownAccessKey  = fmt.Errorf("%w: unknown AccessKeyId", mqttbroker.ErrBadCredentials)
	errNoPassword        = fmt.Errorf("%w: no password (the signature)", mqttbroker.ErrBadCredentials)
	errNoGroupID         = fmt.Errorf(`%w: AccessKeyId user name needs a client id "GroupId@@@DeviceId"`, mqttbroker.ErrBadCredentials)
	errBadSignature      = fmt.Errorf("%w: signature does not match", mqttbroker.ErrBadCredentials)
	errTokenMode         = fmt.Errorf(`%w: Alibaba "Token|" mode is not supported (it needs Alibaba's token service)`, mqttbroker.ErrBadCredentials)
	errDeviceCredential  = fmt.Errorf(`%w: Alibaba "DeviceCredential|" mode is not supported (per-device credentials are registered with Alibaba's API)`, mqttbroker.ErrBadCredentials)
)

// NewSignature returns a Signature checking against the given AccessKeyId →
// SecretKey pairs; instanceIDs are the Alibaba instance ids that
// "Signature|AccessKeyId|InstanceId" user names may name (none: that form is
// refused).
func NewSignature(secrets map[string]string, instanceIDs []string) *Signature {
	s := &Signature{
		secrets:   make(map[string][]byte, len(secrets)),
		instances: make(map[string]struct{}, len(instanceIDs)),
	}
	for ak, sk := range secrets {
		s.secrets[ak] = []byte(sk)
	}
	for _, id := range instanceIDs {
		s.instances[id] = struct{}{}
	}
	return s
}

// LoadAccessKeys reads "AccessKeyId:SecretKey" lines into a Signature that
// accepts the given instance ids (see NewSignature).
func LoadAccessKeys(path string, instanceIDs []string) (*Signature, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open access key file: %w", err)
	}
	defer f.Close()
	return ParseAccessKeys(f, path, instanceIDs)
}

// ParseAccessKeys parses "AccessKeyId:SecretKey" lines from r; name is used
// in error messages, which never contain a secret.
func ParseAccessKeys(r io.Reader, name string, instanceIDs []string) (*Signature, error) {
	secrets := make(map[string]string)
	err := eachLine(r, name, func(line string) error {
		ak, sk, ok := strings.Cut(line, ":")
		ak, sk = strings.TrimSpace(ak), strings.TrimSpace(sk)
		switch {
		case !ok || ak == "" || sk == "":
			return errors.New(`want "AccessKey:SecretKey"`)
		case strings.Contains(ak, "|"):
			// It could never match: '|' separates the parts of the user name.
			return fmt.Errorf("access key %q contains '|'", ak)
		case secrets[ak] != "":
			return fmt.Errorf("access key %q listed twice", ak)
		}
		secrets[ak] = sk
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("parse access key file: %w", err)
	}
	return NewSignature(secrets, instanceIDs), nil
}

// sign returns the password a client computes: Base64(HMAC-SHA1(secretKey, text)).
func sign(secretKey []byte, text string) string {
	mac := hmac.New(sha1.New, secretKey)
	mac.Write([]byte(text))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Authenticate checks the signature; every refusal wraps
// mqttbroker.ErrBadCredentials (CONNACK 0x04).
func (s *Signature) Authenticate(c mqttbroker.Credentials) error {
	u, err := s.parseUsername(c)
	if err != nil {
		return err
	}
	secret, known := s.secrets[u.accessKey]
	switch {
	case !known && u.signatureMode:
		return errUnknownAccessKey
	case !known:
		return mqttbroker.ErrBadCredentials // not ours: maybe another authenticator's user
	case !c.HasPassword:
		return errNoPassword
	case u.signed == "":
		return errNoGroupID
	}
	// Both sides are 28 bytes when well formed; hmac.Equal does not leak
	// where they differ.
	if !hmac.Equal([]byte(sign(secret, u.signed)), c.Password) {
		return errBadSignature
	}
	return nil
}

// username is what a user name in one of the accepted forms says.
type username struct {
	accessKey     string
	signed        string // the text the password signs
	signatureMode bool   // "Signature|AccessKeyId|InstanceId"
}

// parseUsername reads the user name: a bare AccessKeyId signs the GroupId,
// "Signature|AccessKeyId|InstanceId" the client id.
func (s *Signature) parseUsername(c mqttbroker.Credentials) (username, error) {
	mode, rest, found := strings.Cut(c.Username, "|")
	if !found {
		return username{accessKey: c.Username, signed: presence.GroupID(c.ClientID)}, nil
	}
	switch mode {
	case "Signature":
	case "Token":
		return username{}, errTokenMode
	case "DeviceCredential":
		return username{}, errDeviceCredential
	default:
		return username{}, mqttbroker.ErrBadCredentials // none of Alibaba's modes
	}
	accessKey, instanceID, found := strings.Cut(rest, "|")
	if !found || accessKey == "" || instanceID == "" || strings.Contains(instanceID, "|") {
		return username{}, errMalformedUsername
	}
	if len(s.instances) == 0 {
		return username{}, errNoInstanceID
	}
	if _, ok := s.instances[instanceID]; !ok {
		return username{}, errWrongInstance
	}
	return username{accessKey: accessKey, signed: c.ClientID, signatureMode: true}, nil
}

// Any accepts a client that any of the authenticators accepts, trying them
// in order; when all refuse, the last refusal stands.
func Any(authenticators ...mqttbroker.Authenticator) mqttbroker.Authenticator {
	return anyOf(authenticators)
}

type anyOf []mqttbroker.Authenticator

func (a anyOf) Authenticate(c mqttbroker.Credentials) error {
	err := error(mqttbroker.ErrBadCredentials)
	for _, auth := range a {
		if err = auth.Authenticate(c); err == nil {
			return nil
		}
	}
	return err
}
