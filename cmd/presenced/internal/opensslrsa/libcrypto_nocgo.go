//go:build !cgo || !linux

package opensslrsa

import (
	"crypto/rsa"
	"errors"
)

var errNoCgo = errors.New("built without cgo (CGO_ENABLED=0) or not for Linux: libcrypto cannot be loaded")

// Load reports that this build cannot load libcrypto.
func Load() (version string, err error) { return "", errNoCgo }

// evpKey has no libcrypto behind it in this build.
type evpKey struct{}

// NewSigner reports that this build cannot load libcrypto.
func NewSigner(*rsa.PrivateKey) (*Signer, error) { return nil, errNoCgo }

func (*evpKey) sign(string, int, int, []byte, int) ([]byte, error) { return nil, errNoCgo }
