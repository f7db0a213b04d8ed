package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeSelfSigned writes a self-signed certificate with subject CN cn and
// its key (mode keyMode) to certFile and keyFile.
func writeSelfSigned(t *testing.T, cn, certFile, keyFile string, keyMode os.FileMode) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), keyMode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(keyFile, keyMode) // whatever the umask
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

func servedCN(t *testing.T, r *certReloader) string {
	t.Helper()
	conf, err := r.serverConfig().GetConfigForClient(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	return conf.Certificates[0].Leaf.Subject.CommonName
}

// A reload takes changed files; a broken file keeps the certificate served
// and is counted; a world-readable key is warned about; nothing of the key
// reaches the log.
func TestCertReloader(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSigned(t, "first", certFile, keyFile, 0o600)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	r, err := newCertReloader("mqtt", certFile, keyFile, "", nil, rsaSignerAuto, log)
	if err != nil {
		t.Fatal(err)
	}
	if cn := servedCN(t, r); cn != "first" {
		t.Fatalf("serving %q, want first", cn)
	}
	r.reload(false) // nothing changed
	if r.reloads.Load() != 0 || r.failures.Load() != 0 {
		t.Fatalf("reloads %d failures %d without a change", r.reloads.Load(), r.failures.Load())
	}

	if err := os.WriteFile(certFile, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.reload(false)
	if r.failures.Load() != 1 || servedCN(t, r) != "first" {
		t.Fatalf("after a broken file: failures %d, serving %q; want 1 and first", r.failures.Load(), servedCN(t, r))
	}

	writeSelfSigned(t, "second", certFile, keyFile, 0o644)
	r.reload(false)
	if r.reloads.Load() != 1 || servedCN(t, r) != "second" {
		t.Fatalf("after new files: reloads %d, serving %q; want 1 and second", r.reloads.Load(), servedCN(t, r))
	}
	if !strings.Contains(logs.String(), "readable by every user") {
		t.Fatalf("no warning about the world-readable key:\n%s", logs.String())
	}
	key, _ := os.ReadFile(keyFile)
	block, _ := pem.Decode(key)
	if strings.Contains(logs.String(), string(key[30:60])) || block == nil {
		t.Fatalf("the log holds key material:\n%s", logs.String())
	}
}

func TestTLSFlagsValidation(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for _, tc := range []struct {
		command string
		args    []string
		wantErr string // empty: valid
	}{
		{"serve", []string{"--mqtts-addr", "127.0.0.1:8883", "--mqtt-tls-cert", certFile, "--mqtt-tls-key", keyFile}, ""},
		{"serve", []string{"--mqtts-addr", "127.0.0.1:8883"}, "--mqtts-addr needs --mqtt-tls-cert and --mqtt-tls-key"},
		{"broker", []string{"--mqtt-tls-cert", certFile, "--mqtt-tls-key", keyFile}, "need --mqtts-addr"},
		{"serve", []string{"--mqtts-addr", ":8883", "--mqtt-tls-cert", certFile, "--mqtt-tls-key", keyFile, "--mqtt-tls-identity", "cn"}, "need --mqtt-tls-client-ca"},
		{"serve", []string{"--mqtts-addr", ":8883", "--mqtt-tls-cert", certFile, "--mqtt-tls-key", keyFile, "--mqtt-tls-client-ca", certFile, "--mqtt-tls-identity", "dn"}, "--mqtt-tls-identity must be none or cn"},
		{"serve", []string{"--mqtts-addr", ":8883", "--mqtt-tls-cert", certFile, "--mqtt-tls-key", keyFile, "--mqtt-tls-client-ca", certFile, "--mqtt-tls-identity", "cn", "--mqtt-tls-require-client-id-match"}, ""},
		{"api", []string{"--http-tls-cert", certFile}, "give both or neither"},
		{"consumer", []string{"--rocketmq-namesrv", "127.0.0.1:9876", "--http-tls-cert", certFile, "--http-tls-key", keyFile}, ""},
		{"api", []string{"--mqtts-addr", ":8883"}, "unknown flag --mqtts-addr"},
	} {
		_, err := parseServeConfig(tc.command, tc.args, func(string) string { return "" }, io.Discard)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s %v: %v", tc.command, tc.args, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s %v: %v, want an error saying %q", tc.command, tc.args, err, tc.wantErr)
		}
	}
}
