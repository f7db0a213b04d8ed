//go:build cgo && linux

package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/cmd/presenced/internal/opensslrsa"
)

// writeSelfSignedRSA writes an RSA-2048 certificate for 127.0.0.1 and its
// PKCS #1 key, as `openssl req -newkey rsa:2048` (OpenSSL 1.x) makes them.
func writeSelfSignedRSA(t *testing.T, certFile, keyFile string) *x509.Certificate {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rsa"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return leaf
}

// handshake completes a TLS handshake against conf as a Go client that
// trusts leaf only.
func handshake(t *testing.T, conf *tls.Config, leaf *x509.Certificate) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			err = c.(*tls.Conn).Handshake()
			c.Close()
		}
		served <- err
	}()
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	c.Close()
	if err := <-served; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
}

// --tls-rsa-signer decides who holds an RSA key: with auto and openssl the
// served certificate's key is libcrypto's (and handshakes verify), with go
// it stays Go's; the choice is logged and is the metric's label. An ECDSA
// key is always Go's.
func TestRSASignerChoice(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	leaf := writeSelfSignedRSA(t, certFile, keyFile)
	version, err := opensslrsa.Load()
	if err != nil {
		t.Fatalf("libcrypto.so.3 (Debian 12's libssl3) not usable: %v", err)
	}
	for _, tc := range []struct {
		setting, signer string
		openssl         bool
	}{{rsaSignerAuto, version, true}, {rsaSignerOpenSSL, version, true}, {rsaSignerGo, "go", false}} {
		var logs bytes.Buffer
		r, err := newCertReloader("mqtt", certFile, keyFile, "", nil, tc.setting, slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatalf("%s: %v", tc.setting, err)
		}
		conf, _ := r.serverConfig().GetConfigForClient(&tls.ClientHelloInfo{})
		_, isOpenSSL := conf.Certificates[0].PrivateKey.(*opensslrsa.Signer)
		if isOpenSSL != tc.openssl {
			t.Errorf("%s: key held by libcrypto %v, want %v", tc.setting, isOpenSSL, tc.openssl)
		}
		if got := *r.signer.Load(); got != tc.signer {
			t.Errorf("%s: signer label %q, want %q", tc.setting, got, tc.signer)
		}
		if !strings.Contains(logs.String(), tc.signer) {
			t.Errorf("%s: the signer is not logged: %s", tc.setting, logs.String())
		}
		handshake(t, r.serverConfig(), leaf)
	}

	ecCert, ecKey := filepath.Join(dir, "ec.pem"), filepath.Join(dir, "ec.key")
	writeSelfSigned(t, "ec", ecCert, ecKey, 0o600)
	r, err := newCertReloader("mqtt", ecCert, ecKey, "", nil, rsaSignerOpenSSL, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if got := *r.signer.Load(); got != "go" {
		t.Errorf("ECDSA key: signer %q, want go", got)
	}
}
