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

// Signature implements Alibaba Cloud MQTT signature authentication. Two
// user name forms are accepted:
//
//   - "AccessKey": password = Base64(HMAC-SHA1(SecretKey, GroupId)), where
//     GroupId is the client id before "@@@" (presence.GroupID);
//   - "Signature|AccessKey|InstanceId": password =
//     Base64(HMAC-SHA1(SecretKey, ClientId)).
//
// It is an mqttbroker.Authenticator.
type Signature struct {
	secrets map[string][]byte // AccessKey → SecretKey
}

// NewSignature returns a Signature checking against the given AccessKey →
// SecretKey pairs.
func NewSignature(secrets map[string]string) *Signature {
	s := &Signature{secrets: make(map[string][]byte, len(secrets))}
	for ak, sk := range secrets {
		s.secrets[ak] = []byte(sk)
	}
	return s
}

// LoadAccessKeys reads "AccessKey:SecretKey" lines into a Signature.
func LoadAccessKeys(path string) (*Signature, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open access key file: %w", err)
	}
	defer f.Close()
	return ParseAccessKeys(f, path)
}

// ParseAccessKeys parses "AccessKey:SecretKey" lines from r; name is used
// in error messages.
func ParseAccessKeys(r io.Reader, name string) (*Signature, error) {
	secrets := make(map[string]string)
	err := eachLine(r, name, func(line string) error {
		ak, sk, ok := strings.Cut(line, ":")
		ak, sk = strings.TrimSpace(ak), strings.TrimSpace(sk)
		switch {
		case !ok || ak == "" || sk == "":
			return errors.New(`want "AccessKey:SecretKey"`)
		case secrets[ak] != "":
			return fmt.Errorf("access key %q listed twice", ak)
		}
		secrets[ak] = sk
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("parse access key file: %w", err)
	}
	return NewSignature(secrets), nil
}

// Sign returns the password a client computes: Base64(HMAC-SHA1(secretKey, text)).
func Sign(secretKey, text string) string {
	mac := hmac.New(sha1.New, []byte(secretKey))
	mac.Write([]byte(text))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Authenticate checks the signature; a wrong or unverifiable one is
// mqttbroker.ErrBadCredentials (CONNACK 0x04).
func (s *Signature) Authenticate(c mqttbroker.Credentials) error {
	accessKey, signed := c.Username, presence.GroupID(c.ClientID)
	if mode, rest, ok := strings.Cut(c.Username, "|"); ok {
		if mode != "Signature" {
			return fmt.Errorf("%w: unsupported auth mode", mqttbroker.ErrBadCredentials)
		}
		accessKey, _, _ = strings.Cut(rest, "|")
		signed = c.ClientID
	}
	secret, known := s.secrets[accessKey]
	if !known || !c.HasPassword || signed == "" {
		return mqttbroker.ErrBadCredentials
	}
	mac := hmac.New(sha1.New, secret)
	mac.Write([]byte(signed))
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(want), c.Password) {
		return mqttbroker.ErrBadCredentials
	}
	return nil
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
