//go:build !cgo || !linux

package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"log/slog"
	"strings"
	"testing"
)

// Without cgo an RSA key stays Go's under auto, and openssl is refused.
func TestRSASignerWithoutCgo(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	r := &certReloader{rsaSigner: rsaSignerAuto, log: slog.New(slog.DiscardHandler)}
	cert := tls.Certificate{PrivateKey: key}
	if signer, err := r.useRSASigner(&cert); err != nil || signer != "go" || cert.PrivateKey != key {
		t.Errorf("auto: signer %q err %v", signer, err)
	}
	r.rsaSigner = rsaSignerOpenSSL
	if _, err := r.useRSASigner(&cert); err == nil || !strings.Contains(err.Error(), "--tls-rsa-signer=openssl") {
		t.Errorf("openssl without cgo: err %v", err)
	}
}
