package mqttbroker

import "errors"

// Credentials are what a CONNECT presents, for an Authenticator.
type Credentials struct {
	ClientID    string
	HasUsername bool
	Username    string
	HasPassword bool
	Password    []byte
	RemoteAddr  string // "ip:port"
}

// ErrNotAuthorized, returned (or wrapped) by an Authenticator, refuses the
// connection with CONNACK 0x05 (not authorized) instead of 0x04 (bad user
// name or password).
var ErrNotAuthorized = errors.New("not authorized")

// ErrBadCredentials is the usual Authenticator error: CONNACK 0x04.
var ErrBadCredentials = errors.New("bad user name or password")

// Authenticator checks the credentials of a CONNECT. It is called only for
// clients that present a user name (others are decided by
// Config.AllowAnonymous). A nil error admits the client; an error wrapping
// ErrNotAuthorized refuses it with CONNACK 0x05, any other with 0x04.
type Authenticator interface {
	Authenticate(c Credentials) error
}

// Authorizer decides what an admitted client may do. Topics and filters
// are already validated. A refused subscription gets SUBACK 0x80; a refused
// PUBLISH is acknowledged as the protocol requires but not delivered.
type Authorizer interface {
	CanPublish(clientID, username, topic string) bool
	CanSubscribe(clientID, username, filter string) bool
}
