package test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
	"github.com/presenced/presenced/test/rocketmqfake"
)

// pki is a certificate authority made at test time, with PEM files in a
// temporary directory.
type pki struct {
	t      *testing.T
	dir    string
	name   string
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	CAFile string
	pool   *x509.CertPool
}

func newPKI(t *testing.T, name string) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name + " CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := &pki{t: t, dir: t.TempDir(), name: name, cert: cert, key: key, pool: x509.NewCertPool()}
	p.pool.AddCert(cert)
	p.CAFile = filepath.Join(p.dir, "ca.pem")
	writePEM(t, p.CAFile, "CERTIFICATE", der, 0o644)
	return p
}

func writePEM(t *testing.T, path, kind string, der []byte, mode os.FileMode) {
	t.Helper()
	// Written beside and renamed: a reader never sees half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// issue writes a certificate and key signed by the CA: a server
// certificate for 127.0.0.1 and localhost, or a client certificate with
// subject CN cn. It returns the two file names.
func (p *pki) issue(cn string, server bool) (certFile, keyFile string) {
	p.t.Helper()
	name := strings.ReplaceAll(cn, " ", "_")
	return p.issueTo(cn, server, filepath.Join(p.dir, name+".pem"), filepath.Join(p.dir, name+"-key.pem"))
}

func (p *pki) issueTo(cn string, server bool, certFile, keyFile string) (string, string) {
	p.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		p.t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		p.t.Fatal(err)
	}
	writePEM(p.t, keyFile, "PRIVATE KEY", keyDER, 0o600)
	writePEM(p.t, certFile, "CERTIFICATE", der, 0o644)
	return certFile, keyFile
}

// tlsServer is a presenced with an MQTT over TLS listener.
type tlsServer struct {
	*proc
	MQTTSAddr         string
	CertFile, KeyFile string
}

// startTLSServe starts serve with --mqtts-addr and a server certificate
// of ca, plus the extra flags.
func startTLSServe(t *testing.T, ca *pki, extraArgs ...string) *tlsServer {
	t.Helper()
	s := &tlsServer{MQTTSAddr: freeAddr(t)}
	s.CertFile, s.KeyFile = ca.issue("broker", true)
	args := append([]string{"--mqtts-addr", s.MQTTSAddr, "--mqtt-tls-cert", s.CertFile, "--mqtt-tls-key", s.KeyFile}, extraArgs...)
	s.proc = startServe(t, pgtest.URL(t), args...)
	return s
}

// mosquitto runs a mosquitto client against the TLS listener with args.
func (s *tlsServer) mosquitto(t *testing.T, tool string, args ...string) ([]byte, error) {
	t.Helper()
	host, port, _ := net.SplitHostPort(s.MQTTSAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, requireProgram(t, tool), append([]string{"-h", host, "-p", port}, args...)...)
	return cmd.CombinedOutput()
}

// mosquitto_pub and mosquitto_sub trust the server through --cafile; a
// retained message published over TLS reaches a subscriber over TLS; a
// client that trusts another CA is refused.
func TestMQTTSWithMosquittoClients(t *testing.T) {
	ca := newPKI(t, "server")
	s := startTLSServe(t, ca)
	if out, err := s.mosquitto(t, "mosquitto_pub", "--cafile", ca.CAFile, "-i", "tls-pub", "-t", "tls/hello", "-r", "-q", "1", "-m", "over tls"); err != nil {
		t.Fatalf("mosquitto_pub over TLS: %v\n%s\n%s", err, out, s.logs)
	}
	out, err := s.mosquitto(t, "mosquitto_sub", "--cafile", ca.CAFile, "-i", "tls-sub", "-t", "tls/hello", "-C", "1", "-W", "10")
	if err != nil || strings.TrimSpace(string(out)) != "over tls" {
		t.Fatalf("mosquitto_sub over TLS: %v, %q", err, out)
	}
	other := newPKI(t, "other")
	if out, err := s.mosquitto(t, "mosquitto_pub", "--cafile", other.CAFile, "-i", "tls-wrong-ca", "-t", "x", "-m", "x"); err == nil {
		t.Fatalf("mosquitto_pub trusting another CA succeeded: %s", out)
	}
	// The plain listener still works beside it.
	host, port, _ := net.SplitHostPort(s.MQTTAddr)
	if out, err := exec.Command(requireProgram(t, "mosquitto_pub"), "-h", host, "-p", port, "-i", "plain", "-t", "x", "-m", "x").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub on the plain listener: %v %s", err, out)
	}
}

// With --mqtt-tls-client-ca a client needs a certificate of that CA; with
// --mqtt-tls-require-client-id-match its client id must be the CN.
func TestMQTTSMutualTLSWithMosquittoClients(t *testing.T) {
	serverCA, clientCA, otherCA := newPKI(t, "server"), newPKI(t, "client"), newPKI(t, "other")
	s := startTLSServe(t, serverCA, "--mqtt-tls-client-ca", clientCA.CAFile, "--mqtt-tls-require-client-id-match")
	good, goodKey := clientCA.issue("dev-1", false)
	foreign, foreignKey := otherCA.issue("dev-1", false)
	pub := func(clientID string, extra ...string) ([]byte, error) {
		return s.mosquitto(t, "mosquitto_pub", append([]string{"--cafile", serverCA.CAFile, "-i", clientID, "-t", "m/x", "-m", "x"}, extra...)...)
	}
	if out, err := pub("dev-1", "--cert", good, "--key", goodKey); err != nil {
		t.Fatalf("client with a certificate of the client CA: %v\n%s\n%s", err, out, s.logs)
	}
	if out, err := pub("dev-1"); err == nil {
		t.Fatalf("client without a certificate connected: %s", out)
	}
	if out, err := pub("dev-1", "--cert", foreign, "--key", foreignKey); err == nil {
		t.Fatalf("client with a certificate of another CA connected: %s", out)
	}
	out, err := pub("dev-2", "--cert", good, "--key", goodKey)
	if err == nil || !strings.Contains(strings.ToLower(string(out)), "identifier rejected") {
		t.Fatalf("client id dev-2 with the certificate of dev-1: %v %s; want identifier rejected (CONNACK 0x02)", err, out)
	}
	s.waitMetric("presenced_mqtt_connects_refused_total{reason=\"identifier_rejected\"}", 1, 10*time.Second)
}

// pahoTLS connects paho.mqtt.golang over ssl://.
func pahoTLS(t *testing.T, addr, clientID string, conf *tls.Config) (mqtt.Client, error) {
	t.Helper()
	return pahoSecure(t, "ssl://"+addr, clientID, conf)
}

// pahoSecure connects paho.mqtt.golang to broker (an ssl:// or wss:// URL)
// with conf, without reconnecting.
func pahoSecure(t *testing.T, broker, clientID string, conf *tls.Config) (mqtt.Client, error) {
	t.Helper()
	opts := mqtt.NewClientOptions().AddBroker(broker).SetClientID(clientID).
		SetTLSConfig(conf).SetKeepAlive(30 * time.Second).SetAutoReconnect(false).
		SetConnectRetry(false).SetConnectTimeout(5 * time.Second)
	client := mqtt.NewClient(opts)
	tok := client.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, context.DeadlineExceeded
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { client.Disconnect(100) })
	return client, nil
}

// roundTrip publishes on a topic the client subscribed to and waits for
// the message to come back through the broker.
func roundTrip(t *testing.T, client mqtt.Client, topic string) {
	t.Helper()
	got := make(chan string, 1)
	if tok := client.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case got <- string(m.Payload()):
		default:
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", topic, tok.Error())
	}
	if tok := client.Publish(topic, 1, false, "ping "+topic); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
	select {
	case m := <-got:
		if m != "ping "+topic {
			t.Fatalf("got %q on %s", m, topic)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no message back on %s", topic)
	}
	client.Unsubscribe(topic).WaitTimeout(5 * time.Second)
}

// paho.mqtt.golang over ssl://, with a client certificate and the CN as
// user name; the client is online in the API.
func TestMQTTSPahoWithClientCertificate(t *testing.T) {
	serverCA, clientCA := newPKI(t, "server"), newPKI(t, "client")
	aclFile := filepath.Join(t.TempDir(), "acl")
	if err := os.WriteFile(aclFile, []byte("user dev-7\ntopic readwrite devices/dev-7/#\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startTLSServe(t, serverCA, "--mqtt-tls-client-ca", clientCA.CAFile, "--mqtt-tls-identity", "cn", "--mqtt-acl-file", aclFile)
	certFile, keyFile := clientCA.issue("dev-7", false)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	client, err := pahoTLS(t, s.MQTTSAddr, "GID_tls@@@dev-7", &tls.Config{RootCAs: serverCA.pool, Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatalf("paho over ssl://: %v\n%s", err, s.logs)
	}
	roundTrip(t, client, "devices/dev-7/state") // allowed for user dev-7 only
	s.waitOnline("GID_tls@@@dev-7", true, 10*time.Second)
	// The certificate's CN is the user name the store records.
	var events struct {
		Items []presence.StoredEvent `json:"items"`
	}
	s.getJSON("/clients/GID_tls@@@dev-7/events", &events)
	if len(events.Items) == 0 || events.Items[0].Type != presence.EventConnect || events.Items[0].Username != "dev-7" {
		t.Fatalf("events %+v, want a connect with user name dev-7", events.Items)
	}
	if _, err := pahoTLS(t, s.MQTTSAddr, "GID_tls@@@no-cert", &tls.Config{RootCAs: serverCA.pool}); err == nil {
		t.Fatal("paho without a client certificate connected")
	}
	s.waitMetric("presenced_mqtt_tls_handshakes_total", 1, 10*time.Second)
}

// The server certificate is replaced while a client stays connected: the
// change of the files is noticed, new connections get the new certificate,
// the connected client goes on. A broken certificate is refused on SIGHUP
// and the previous one stays.
func TestMQTTSCertificateReload(t *testing.T) {
	oldCA, newCA := newPKI(t, "old"), newPKI(t, "new")
	s := startTLSServe(t, oldCA, "--tls-reload-every", "100ms")
	stay, err := pahoTLS(t, s.MQTTSAddr, "stays-connected", &tls.Config{RootCAs: oldCA.pool})
	if err != nil {
		t.Fatalf("connect with the old certificate: %v\n%s", err, s.logs)
	}
	roundTrip(t, stay, "reload/before")

	newCA.issueTo("broker", true, s.CertFile, s.KeyFile)
	s.waitMetric(`presenced_tls_certificate_reloads_total{listener="mqtt"}`, 1, 10*time.Second)
	if _, err := pahoTLS(t, s.MQTTSAddr, "trusts-old", &tls.Config{RootCAs: oldCA.pool}); err == nil {
		t.Fatal("a client trusting only the old CA connected after the reload")
	}
	if _, err := pahoTLS(t, s.MQTTSAddr, "trusts-new", &tls.Config{RootCAs: newCA.pool}); err != nil {
		t.Fatalf("a client trusting the new CA: %v\n%s", err, s.logs)
	}
	roundTrip(t, stay, "reload/after")

	// A broken certificate file: the reload fails, the new certificate stays.
	if err := os.WriteFile(s.CertFile, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	s.waitMetric(`presenced_tls_certificate_reload_failures_total{listener="mqtt"}`, 1, 10*time.Second)
	if _, err := pahoTLS(t, s.MQTTSAddr, "after-failure", &tls.Config{RootCAs: newCA.pool}); err != nil {
		t.Fatalf("after a failed reload: %v\n%s", err, s.logs)
	}
	roundTrip(t, stay, "reload/failed")
	if !strings.Contains(s.logs.String(), "TLS certificate reload failed") {
		t.Fatalf("the failed reload is not logged:\n%s", s.logs)
	}
}

// The connect event of a TLS connection carries the TLS version and, with
// mutual TLS, the client certificate's subject: seen in the events
// "presenced broker" sends to RocketMQ.
func TestMQTTSConnectEventRecordsTLS(t *testing.T) {
	serverCA, clientCA := newPKI(t, "server"), newPKI(t, "client")
	mqttsAddr, b, fake := startTLSBroker(t, "--mqtts-addr", "presenced_tls_events", serverCA, clientCA)
	clientCert, clientKey := clientCA.issue("dev-9", false)
	cert, err := tls.LoadX509KeyPair(clientCert, clientKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pahoTLS(t, mqttsAddr, "GID_tls@@@dev-9", &tls.Config{RootCAs: serverCA.pool, Certificates: []tls.Certificate{cert}, MaxVersion: tls.VersionTLS12}); err != nil {
		t.Fatalf("paho over TLS 1.2: %v\n%s", err, b.logs)
	}
	body, e := waitConnectEvent(t, fake, "presenced_tls_events", "GID_tls@@@dev-9", b)
	if e.TLSVersion != "TLS 1.2" || e.TLSClientSubject != "CN=dev-9" {
		t.Fatalf("connect event %s: tlsVersion %q tlsClientSubject %q, want TLS 1.2 and CN=dev-9", body, e.TLSVersion, e.TLSClientSubject)
	}
	if !bytes.Contains(body, []byte(`"tlsVersion":"TLS 1.2"`)) {
		t.Fatalf("connect event JSON %s lacks tlsVersion", body)
	}
}

// startTLSBroker starts a RocketMQ double and "presenced broker" whose
// events go to topic on it, serving MQTT over TLS on a fresh address
// through listenFlag (--mqtts-addr or --mqtt-wss-addr) with a certificate
// of serverCA and requiring client certificates of clientCA.
func startTLSBroker(t *testing.T, listenFlag, topic string, serverCA, clientCA *pki) (addr string, b *proc, fake *rocketmqfake.Fake) {
	t.Helper()
	fake = rocketmqfake.New(rocketmqfake.Options{NamesrvAddr: "127.0.0.1:0", BrokerAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err := fake.Start(); err != nil {
		t.Fatalf("start rocketmq fake: %v", err)
	}
	t.Cleanup(fake.Stop)
	certFile, keyFile := serverCA.issue("broker", true)
	addr = freeAddr(t)
	b = &proc{t: t, Command: "broker", MQTTAddr: freeAddr(t), HTTPAddr: freeAddr(t), Node: "broker-" + strings.TrimPrefix(listenFlag, "--"), DataDir: t.TempDir(),
		Args: []string{"--rocketmq-namesrv", fake.NamesrvAddr(), "--rocketmq-topic", topic,
			listenFlag, addr, "--mqtt-tls-cert", certFile, "--mqtt-tls-key", keyFile, "--mqtt-tls-client-ca", clientCA.CAFile}}
	b.start()
	return addr, b, fake
}

// waitConnectEvent waits up to 20 s for the connect event of clientID
// among the messages on topic, and returns its body and the event.
func waitConnectEvent(t *testing.T, fake *rocketmqfake.Fake, topic, clientID string, b *proc) ([]byte, presence.Event) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, m := range fake.Messages(topic) {
			var e presence.Event
			if json.Unmarshal(m.Body, &e) == nil && e.ClientID == clientID && e.Type == presence.EventConnect {
				return m.Body, e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connect event of %s in RocketMQ after 20s\n%s", clientID, b.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
