package main

import (
	"crypto/rsa"
	"crypto/tls"
	"fmt"

	"github.com/presenced/presenced/cmd/presenced/internal/opensslrsa"
)

// --tls-rsa-signer: who computes the signature a TLS server makes in every
// full handshake with an RSA certificate. That one private-key operation
// is most of a TLS connect's CPU, and Go's constant-time crypto/rsa takes
// about four times as long as OpenSSL 3 for it (internal/opensslrsa).
const (
	rsaSignerAuto    = "auto"    // OpenSSL when libcrypto.so.3 loads, else Go
	rsaSignerOpenSSL = "openssl" // OpenSSL or refuse to start (or to reload)
	rsaSignerGo      = "go"      // always crypto/rsa
)

func validRSASigner(s string) bool {
	return s == rsaSignerAuto || s == rsaSignerOpenSSL || s == rsaSignerGo
}

// useRSASigner hands cert's RSA key to libcrypto as --tls-rsa-signer says,
// and returns who signs for it (a log and metric label: "go" or
// libcrypto's version). With auto, a libcrypto that cannot be used is
// logged and Go signs.
func (r *certReloader) useRSASigner(cert *tls.Certificate) (string, error) {
	key, ok := cert.PrivateKey.(*rsa.PrivateKey)
	if !ok || r.rsaSigner == rsaSignerGo {
		return "go", nil
	}
	version, err := opensslrsa.Load()
	var signer *opensslrsa.Signer
	if err == nil {
		signer, err = opensslrsa.NewSigner(key)
	}
	if err != nil {
		if r.rsaSigner == rsaSignerOpenSSL {
			return "", fmt.Errorf("--tls-rsa-signer=openssl: %w", err)
		}
		r.log.Warn("TLS RSA signatures by Go's crypto/rsa, about 4x slower than OpenSSL's: libcrypto.so.3 is not usable (install libssl3, or say --tls-rsa-signer=go)", "err", err)
		return "go", nil
	}
	cert.PrivateKey = signer
	return version, nil
}
