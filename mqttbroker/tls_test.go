package mqttbroker

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"os"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

// testCA is a certificate authority made at test time.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue makes a leaf certificate: for 127.0.0.1 and localhost when server,
// else a client certificate with subject CN cn.
func (ca *testCA) issue(t *testing.T, cn string, server bool) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"presenced test"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// tlsFixture is a server CA, a client CA and a broker serving TLS.
type tlsFixture struct {
	*testServer
	serverCA, clientCA *testCA
}

// startTLSServer serves cfg over TLS with a server certificate of a fresh
// CA; with mutual, client certificates of another fresh CA are required.
func startTLSServer(t *testing.T, cfg Config, mutual bool) *tlsFixture {
	t.Helper()
	f := &tlsFixture{serverCA: newTestCA(t, "server CA"), clientCA: newTestCA(t, "client CA")}
	tlsConfig := &tls.Config{
		Certificates: []tls.Certificate{f.serverCA.issue(t, "broker", true)},
		MinVersion:   tls.VersionTLS12,
	}
	if mutual {
		tlsConfig.ClientAuth = tls.RequireAndVerifyClientCert
		tlsConfig.ClientCAs = f.clientCA.pool
	}
	if cfg.Logger == nil {
		cfg.Logger = discardLogger()
	}
	cfg.Node, cfg.Epoch = "test-node", "test-epoch"
	rec := newRecorder()
	srv := New(cfg, rec.sink)
	ln, err := Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, tlsConfig) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("ServeTLS returned %v, want ErrServerClosed", err)
		}
	})
	f.testServer = &testServer{Server: srv, rec: rec, addr: ln.Addr().String()}
	return f
}

// dialTLS connects a raw MQTT client over TLS; cert may be nil.
func (f *tlsFixture) dialTLS(t *testing.T, cert *tls.Certificate, adjust func(*tls.Config)) (*rawClient, error) {
	t.Helper()
	cfg := &tls.Config{RootCAs: f.serverCA.pool, ServerName: "127.0.0.1"}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	if adjust != nil {
		adjust(cfg)
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	nc, err := d.Dial("tcp", f.addr)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { nc.Close() })
	return &rawClient{t: t, nc: nc}, nil
}

func (f *tlsFixture) mustDialTLS(t *testing.T, cert *tls.Certificate, adjust func(*tls.Config)) *rawClient {
	t.Helper()
	c, err := f.dialTLS(t, cert, adjust)
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	return c
}

// connectEvent waits for the connect event of clientID.
func connectEvent(t *testing.T, rec *recorder, clientID string) presence.Event {
	t.Helper()
	var found presence.Event
	rec.waitFor(t, "connect of "+clientID, func(events []presence.Event) bool {
		for _, e := range events {
			if e.ClientID == clientID && e.Type == presence.EventConnect {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

// A client speaks MQTT over TLS 1.2 and 1.3; the connect event says which.
func TestTLSServesMQTTAndRecordsTheVersion(t *testing.T) {
	f := startTLSServer(t, Config{AllowAnonymous: true}, false)
	for _, tc := range []struct {
		version uint16
		want    string
	}{{tls.VersionTLS12, "TLS 1.2"}, {tls.VersionTLS13, "TLS 1.3"}} {
		clientID := "tls-" + tc.want[4:]
		c := f.mustDialTLS(t, nil, func(cfg *tls.Config) { cfg.MinVersion, cfg.MaxVersion = tc.version, tc.version })
		if ack := c.connect(&connectPacket{ClientID: clientID, CleanSession: true, Keepalive: 30}); ack.ReturnCode != 0 {
			t.Fatalf("%s: CONNACK %d", tc.want, ack.ReturnCode)
		}
		c.send(&emptyPacket{Type: typePingreq})
		c.expect(typePingresp)
		e := connectEvent(t, f.rec, clientID)
		if e.TLSVersion != tc.want || e.TLSClientSubject != "" {
			t.Fatalf("connect event TLS version %q subject %q, want %q and none", e.TLSVersion, e.TLSClientSubject, tc.want)
		}
	}
	if s := f.TLSStats(); s.Handshakes != 2 || s.HandshakeFailures != 0 {
		t.Fatalf("TLS stats %+v, want 2 handshakes, no failure", s)
	}
}

// A client that does not trust the server's CA, and a plain MQTT client on
// the TLS port, get no MQTT session; the failures are counted.
func TestTLSRefusesHandshakesThatFail(t *testing.T) {
	f := startTLSServer(t, Config{AllowAnonymous: true, ConnectTimeout: 2 * time.Second}, false)
	other := newTestCA(t, "other CA")
	if _, err := f.dialTLS(t, nil, func(cfg *tls.Config) { cfg.RootCAs = other.pool }); err == nil {
		t.Fatal("a client trusting another CA completed the handshake")
	}
	plain := dial(t, f.addr)
	plain.send(&connectPacket{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "plain", CleanSession: true})
	if p, err := plain.next(5 * time.Second); err == nil {
		t.Fatalf("plain client got %s from the TLS listener", p.kind())
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.TLSStats().HandshakeFailures < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("TLS stats %+v, want 2 handshake failures", f.TLSStats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if events := f.rec.snapshot(); len(events) != 0 {
		t.Fatalf("events %v, want none", events)
	}
}

// waitParked waits until the server's only connection of clientID is in
// the idle poller.
func waitParked(t *testing.T, s *Server, clientID string) {
	t.Helper()
	if s.idle == nil {
		t.Skip("no idle poller on this platform")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.idle.mu.Lock()
		parked := false
		for _, c := range s.idle.parked {
			if c.clientID == clientID {
				parked = true
			}
		}
		s.idle.mu.Unlock()
		if parked {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection of %s not parked after 5s", clientID)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// An idle TLS connection parks in the idle poller like a plain one; parked,
// it still answers PINGREQ and is closed when its keepalive runs out
// [MQTT-3.1.2-24].
func TestTLSParkedConnectionAnswersPingAndExpires(t *testing.T) {
	f := startTLSServer(t, Config{AllowAnonymous: true}, false)
	c := f.mustDialTLS(t, nil, nil)
	if ack := c.connect(&connectPacket{ClientID: "parked", CleanSession: true, Keepalive: 1}); ack.ReturnCode != 0 {
		t.Fatalf("CONNACK %d", ack.ReturnCode)
	}
	waitParked(t, f.Server, "parked")
	c.send(&emptyPacket{Type: typePingreq})
	c.expect(typePingresp)
	waitParked(t, f.Server, "parked")
	// Silent now: closed after 1.5 × keepalive.
	if p, err := c.next(10 * time.Second); err == nil {
		t.Fatalf("got %s, want the connection closed", p.kind())
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection still open after 10s")
	}
	if e := f.rec.waitTCPClean(t, "parked"); e.Reason != presence.ReasonKeepaliveTimeout {
		t.Fatalf("tcpclean reason %q, want keepalive_timeout", e.Reason)
	}
}

// Plaintext that the tls.Conn decrypted but the broker has not read yet —
// a PINGREQ in the same TLS record as a PUBLISH larger than the read
// buffer — does not wake the idle poller: the connection must not park on
// it.
func TestTLSBufferedPlaintextIsNotStranded(t *testing.T) {
	f := startTLSServer(t, Config{AllowAnonymous: true}, false)
	c := f.mustDialTLS(t, nil, func(cfg *tls.Config) { cfg.DynamicRecordSizingDisabled = true })
	if ack := c.connect(&connectPacket{ClientID: "buffered", CleanSession: true, Keepalive: 60}); ack.ReturnCode != 0 {
		t.Fatalf("CONNACK %d", ack.ReturnCode)
	}
	waitParked(t, f.Server, "buffered")
	both := encodePacket(&publishPacket{Topic: "big", Payload: make([]byte, 3*readBufferSize)})
	both = append(both, encodePacket(&emptyPacket{Type: typePingreq})...)
	c.write(both) // one TLS record
	c.expect(typePingresp)
}

// identityAuthorizer records the user names the Authorizer is asked about
// and allows only topics under the user name.
type identityAuthorizer struct{ users chan string }

func (a identityAuthorizer) CanPublish(clientID, username, topic string) bool {
	a.users <- username
	return topic == username+"/x"
}

func (a identityAuthorizer) CanSubscribe(clientID, username, filter string) bool {
	a.users <- username
	return filter == username+"/#"
}

// refusingAuthenticator refuses everyone: with identity cn it must not be
// asked.
type refusingAuthenticator struct{}

func (refusingAuthenticator) Authenticate(Credentials) error { return ErrBadCredentials }

func TestTLSIdentityFromClientCertificate(t *testing.T) {
	for _, tc := range []struct {
		name     string
		identity TLSIdentity
		match    bool
		cn       string
		clientID string
		username string // in CONNECT
		wantCode byte
		wantUser string // the user name the Authorizer sees
	}{
		{name: "none keeps the CONNECT user name", identity: TLSIdentityNone, cn: "dev-1", clientID: "any", username: "alice", wantCode: 0x04},
		{name: "none without a user name", identity: TLSIdentityNone, cn: "dev-1", clientID: "any", wantCode: 0, wantUser: ""},
		{name: "cn is the user name", identity: TLSIdentityCN, cn: "dev-1", clientID: "any", username: "mallory", wantCode: 0, wantUser: "dev-1"},
		{name: "cn with a matching client id", identity: TLSIdentityCN, match: true, cn: "dev-1", clientID: "dev-1", wantCode: 0, wantUser: "dev-1"},
		{name: "client id other than the cn", identity: TLSIdentityCN, match: true, cn: "dev-1", clientID: "dev-2", wantCode: 0x02},
		{name: "match alone", identity: TLSIdentityNone, match: true, cn: "dev-3", clientID: "dev-3", wantCode: 0, wantUser: ""},
		{name: "match alone refuses another id", identity: TLSIdentityNone, match: true, cn: "dev-3", clientID: "dev-4", wantCode: 0x02},
		{name: "a certificate without cn", identity: TLSIdentityCN, cn: "", clientID: "x", wantCode: 0x05},
	} {
		t.Run(tc.name, func(t *testing.T) {
			authz := identityAuthorizer{users: make(chan string, 8)}
			f := startTLSServer(t, Config{
				AllowAnonymous: true, Authenticator: refusingAuthenticator{}, Authorizer: authz,
				TLSIdentity: tc.identity, TLSRequireClientIDMatch: tc.match,
			}, true)
			cert := f.clientCA.issue(t, tc.cn, false)
			c := f.mustDialTLS(t, &cert, nil)
			p := &connectPacket{ClientID: tc.clientID, CleanSession: true, Username: tc.username, HasUsername: tc.username != ""}
			if ack := c.connect(p); ack.ReturnCode != tc.wantCode {
				t.Fatalf("CONNACK %#x, want %#x", ack.ReturnCode, tc.wantCode)
			}
			if tc.wantCode != 0 {
				return
			}
			if codes := c.subscribe(1, 0, tc.wantUser+"/#"); codes[0] != 0 {
				t.Fatalf("SUBACK %v for %s/#", codes, tc.wantUser)
			}
			if got := <-authz.users; got != tc.wantUser {
				t.Fatalf("Authorizer asked about user %q, want %q", got, tc.wantUser)
			}
			e := connectEvent(t, f.rec, tc.clientID)
			if e.Username != tc.wantUser || e.TLSClientSubject == "" || e.TLSVersion != "TLS 1.3" {
				t.Fatalf("connect event user %q subject %q version %q, want user %q, the subject and TLS 1.3", e.Username, e.TLSClientSubject, e.TLSVersion, tc.wantUser)
			}
			if want := "CN=" + tc.cn + ",O=presenced test"; e.TLSClientSubject != want {
				t.Fatalf("subject %q, want %q", e.TLSClientSubject, want)
			}
		})
	}
}

// With mutual TLS a client without a certificate, or with one of another
// CA, is refused by the handshake.
func TestMutualTLSRefusesMissingAndForeignCertificates(t *testing.T) {
	f := startTLSServer(t, Config{AllowAnonymous: true}, true)
	foreign := newTestCA(t, "foreign CA").issue(t, "dev-1", false)
	for name, adjust := range map[string]func(*tls.Config){
		"no certificate": nil,
		// Sent although the server names other acceptable CAs.
		"foreign CA": func(cfg *tls.Config) {
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &foreign, nil }
		},
	} {
		// In TLS 1.3 the client learns of the refusal only on its first
		// read, after the handshake.
		c, err := f.dialTLS(t, nil, adjust)
		if err == nil {
			c.send(&connectPacket{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "x", CleanSession: true})
			var p packet
			if p, err = c.next(5 * time.Second); err == nil {
				t.Fatalf("%s: got %s", name, p.kind())
			}
		}
		t.Logf("%s: refused: %v", name, err)
	}
	if events := f.rec.snapshot(); len(events) != 0 {
		t.Fatalf("events %v, want none", events)
	}
}
