//go:build cgo && linux

package opensslrsa

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"
)

var (
	testKeyOnce sync.Once
	testKey     *rsa.PrivateKey
)

func rsaKey(t testing.TB) *rsa.PrivateKey {
	testKeyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		testKey = k
	})
	return testKey
}

// newTestSigner fails (not skips) when libcrypto cannot be loaded: the
// project's machines have OpenSSL 3, and a silently skipped test would
// hide that the fast path is gone.
func newTestSigner(t testing.TB) *Signer {
	t.Helper()
	s, err := NewSigner(rsaKey(t))
	if err != nil {
		t.Fatalf("NewSigner: %v (libcrypto.so.3 is part of Debian 12's libssl3)", err)
	}
	return s
}

func digest(t testing.TB, h crypto.Hash, msg string) []byte {
	w := h.New()
	w.Write([]byte(msg))
	return w.Sum(nil)
}

// Every signature libcrypto makes verifies with Go's crypto/rsa, and a
// signature of another message does not.
func TestSignaturesVerifyWithGo(t *testing.T) {
	s := newTestSigner(t)
	pub := s.Public().(*rsa.PublicKey)
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512, crypto.SHA1} {
		d := digest(t, h, "the server's CertificateVerify")
		other := digest(t, h, "something else")
		for _, salt := range []int{rsa.PSSSaltLengthEqualsHash, rsa.PSSSaltLengthAuto} {
			sig, err := s.Sign(rand.Reader, d, &rsa.PSSOptions{SaltLength: salt, Hash: h})
			if err != nil {
				t.Fatalf("PSS %v salt %d: %v", h, salt, err)
			}
			if err := rsa.VerifyPSS(pub, h, d, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}); err != nil {
				t.Errorf("PSS %v salt %d does not verify: %v", h, salt, err)
			}
			if salt == rsa.PSSSaltLengthEqualsHash {
				if err := rsa.VerifyPSS(pub, h, d, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}); err != nil {
					t.Errorf("PSS %v: salt is not the hash's length: %v", h, err)
				}
			}
			if rsa.VerifyPSS(pub, h, other, sig, nil) == nil {
				t.Errorf("PSS %v signature verifies for another digest", h)
			}
		}
		sig, err := s.Sign(rand.Reader, d, h)
		if err != nil {
			t.Fatalf("PKCS1v15 %v: %v", h, err)
		}
		if err := rsa.VerifyPKCS1v15(pub, h, d, sig); err != nil {
			t.Errorf("PKCS1v15 %v does not verify: %v", h, err)
		}
		if want, _ := rsa.SignPKCS1v15(nil, rsaKey(t), h, d); string(want) != string(sig) {
			t.Errorf("PKCS1v15 %v differs from Go's (it is deterministic)", h)
		}
	}
}

// What libcrypto is not asked for is signed by Go, correctly.
func TestUnusualOptionsFallBackToGo(t *testing.T) {
	s := newTestSigner(t)
	pub := s.Public().(*rsa.PublicKey)
	d := digest(t, crypto.SHA256, "x")
	sig, err := s.Sign(rand.Reader, d, &rsa.PSSOptions{SaltLength: 20, Hash: crypto.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPSS(pub, crypto.SHA256, d, sig, &rsa.PSSOptions{SaltLength: 20}); err != nil {
		t.Errorf("salt 20: %v", err)
	}
	raw := []byte("0123456789abcdef0123456789abcdef0123")
	sig, err = s.Sign(rand.Reader, raw, crypto.Hash(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPKCS1v15(pub, crypto.Hash(0), raw, sig); err != nil {
		t.Errorf("raw PKCS1v15: %v", err)
	}
	if _, err := s.Sign(rand.Reader, d[:5], crypto.SHA256); err == nil {
		t.Error("a digest of the wrong length was signed")
	}
}

func TestConcurrentSigning(t *testing.T) {
	s := newTestSigner(t)
	pub := s.Public().(*rsa.PublicKey)
	var wg sync.WaitGroup
	errs := make(chan error, 8*20)
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				d := digest(t, crypto.SHA256, string(rune('a'+g))+string(rune('a'+i)))
				sig, err := s.Sign(rand.Reader, d, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256})
				if err == nil {
					err = rsa.VerifyPSS(pub, crypto.SHA256, d, sig, nil)
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A Go TLS client completes TLS 1.3 and TLS 1.2 handshakes with a server
// whose certificate key is the Signer.
func TestTLSHandshakeWithSigner(t *testing.T) {
	s := newTestSigner(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, s.Public(), s)
	if err != nil {
		t.Fatal(err) // the self-signature is the Signer's too
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		server := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: s, Leaf: leaf}}, MinVersion: version, MaxVersion: version}
		client := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: version, MaxVersion: version}
		ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			c, err := ln.Accept()
			if err == nil {
				err = c.(*tls.Conn).Handshake()
				c.Close()
			}
			done <- err
		}()
		cc, err := tls.Dial("tcp", ln.Addr().String(), client)
		if err != nil {
			t.Fatalf("TLS %x client handshake: %v", version, err)
		}
		if err := <-done; err != nil {
			t.Fatalf("TLS %x server handshake: %v", version, err)
		}
		if got := cc.ConnectionState().Version; got != version {
			t.Errorf("negotiated %x, want %x", got, version)
		}
		cc.Close()
		ln.Close()
	}
}

func BenchmarkSignPSS2048(b *testing.B) {
	d := digest(b, crypto.SHA256, "x")
	opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
	for _, impl := range []string{"openssl", "go"} {
		b.Run(impl, func(b *testing.B) {
			var signer crypto.Signer = rsaKey(b)
			if impl == "openssl" {
				signer = newTestSigner(b)
			}
			for b.Loop() {
				if _, err := signer.Sign(rand.Reader, d, opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
