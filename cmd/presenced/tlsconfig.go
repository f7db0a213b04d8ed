package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/mqttbroker"
)

// tlsConfig is TLS on the listeners: MQTT over TLS (serve, broker) and
// HTTPS (every command with an HTTP listener). Certificates and the client
// CA are read from PEM files and reloaded when the files change or on
// SIGHUP, without a restart.
type tlsConfig struct {
	MQTTSAddr string
	// MQTTWSSAddr is MQTT over secure WebSocket: the same certificate
	// and options, the WebSocket settings of --mqtt-ws-* (listenconfig.go).
	MQTTWSSAddr              string
	MQTTCert, MQTTKey        string
	MQTTClientCA             string
	MQTTIdentity             string // "none" or "cn"
	MQTTRequireClientIDMatch bool

	HTTPCert, HTTPKey string

	// RSASigner is who computes the signature of RSA certificates:
	// auto, openssl or go (rsasigner.go).
	RSASigner string

	ReloadEvery time.Duration
}

func registerTLSFlags(f *envFlags, c *tlsConfig, command string) {
	if command == "serve" || command == "broker" {
		f.String(&c.MQTTSAddr, "mqtts-addr", "", "MQTT over TLS listen address (conventionally :8883); empty: none. Needs --mqtt-tls-cert and --mqtt-tls-key")
		f.String(&c.MQTTWSSAddr, "mqtt-wss-addr", "", "MQTT over secure WebSocket (wss) listen address, e.g. :8084; empty: off. Same certificate and options as --mqtts-addr, same path as --mqtt-ws-path")
		f.String(&c.MQTTCert, "mqtt-tls-cert", "", "PEM file of the MQTT TLS server certificate (chain); reloaded when it changes or on SIGHUP")
		f.String(&c.MQTTKey, "mqtt-tls-key", "", "PEM file of the private key of --mqtt-tls-cert (should not be readable by other users)")
		f.String(&c.MQTTClientCA, "mqtt-tls-client-ca", "", "PEM file of the CAs of client certificates: set, every MQTT TLS client must present a certificate they signed (mutual TLS)")
		f.String(&c.MQTTIdentity, "mqtt-tls-identity", "none", "what a client certificate stands for (needs --mqtt-tls-client-ca): none (the CONNECT's credentials are checked as usual) or cn (the subject CN is the user name for ACLs and events, and the certificate replaces the password)")
		f.Bool(&c.MQTTRequireClientIDMatch, "mqtt-tls-require-client-id-match", false, "refuse (CONNACK 0x02, identifier rejected) a TLS client whose client id is not its certificate's subject CN (needs --mqtt-tls-client-ca)")
	}
	f.String(&c.HTTPCert, "http-tls-cert", "", "PEM file of the HTTPS server certificate (chain): set with --http-tls-key, the HTTP listener serves HTTPS only; reloaded like the MQTT one")
	f.String(&c.HTTPKey, "http-tls-key", "", "PEM file of the private key of --http-tls-cert")
	f.String(&c.RSASigner, "tls-rsa-signer", rsaSignerAuto, "who computes the handshake signature of an RSA certificate (MQTT and HTTPS): auto (OpenSSL's libcrypto.so.3 when it can be loaded, about 4x faster; else Go's crypto/rsa), openssl (refuse to start without it) or go. ECDSA keys are always Go's")
	f.Duration(&c.ReloadEvery, "tls-reload-every", 5*time.Second, "how often the TLS certificate and key files are checked for changes (0: only on SIGHUP)")
}

func (c tlsConfig) validate() []error {
	var errs []error
	mqttFiles := c.MQTTCert != "" || c.MQTTKey != "" || c.MQTTClientCA != ""
	switch {
	case c.MQTTSAddr != "" && (c.MQTTCert == "" || c.MQTTKey == ""):
		errs = append(errs, errors.New("--mqtts-addr needs --mqtt-tls-cert and --mqtt-tls-key"))
	case c.MQTTWSSAddr != "" && (c.MQTTCert == "" || c.MQTTKey == ""):
		errs = append(errs, errors.New("--mqtt-wss-addr needs --mqtt-tls-cert and --mqtt-tls-key"))
	case !c.mqttTLSOn() && mqttFiles:
		errs = append(errs, errors.New("--mqtt-tls-cert, --mqtt-tls-key and --mqtt-tls-client-ca need --mqtts-addr or --mqtt-wss-addr"))
	}
	if _, err := mqttbroker.ParseTLSIdentity(c.MQTTIdentity); err != nil {
		errs = append(errs, fmt.Errorf("--mqtt-tls-identity must be none or cn, not %q", c.MQTTIdentity))
	}
	if (c.MQTTIdentity == "cn" || c.MQTTRequireClientIDMatch) && c.MQTTClientCA == "" {
		errs = append(errs, errors.New("--mqtt-tls-identity=cn and --mqtt-tls-require-client-id-match need --mqtt-tls-client-ca (client certificates)"))
	}
	if (c.HTTPCert == "") != (c.HTTPKey == "") {
		errs = append(errs, errors.New("--http-tls-cert and --http-tls-key go together: give both or neither"))
	}
	if c.RSASigner != "" && !validRSASigner(c.RSASigner) { // "": a command without TLS listeners (migrate)
		errs = append(errs, fmt.Errorf("--tls-rsa-signer must be auto, openssl or go, not %q", c.RSASigner))
	}
	if c.ReloadEvery < 0 {
		errs = append(errs, fmt.Errorf("--tls-reload-every must not be negative, not %v", c.ReloadEvery))
	}
	return errs
}

// mqttTLSOn reports whether an MQTT listener serves TLS (mqtts or wss).
func (c tlsConfig) mqttTLSOn() bool { return c.MQTTSAddr != "" || c.MQTTWSSAddr != "" }

// processTLS is the TLS of one process: the certificates of its
// listeners, their reloading, and the metrics of both.
type processTLS struct {
	cfg       tlsConfig
	log       *slog.Logger
	reloaders []*certReloader
	broker    *mqttbroker.Server // set by addMQTTS
	mqtts     net.Listener       // nil without --mqtts-addr
	mqttsConf *tls.Config
	mqttConf  *tls.Config // of mqtts and wss, one reloader for both; nil before mqttServerConfig
}

func newProcessTLS(cfg tlsConfig, log *slog.Logger) *processTLS {
	return &processTLS{cfg: cfg, log: log.With("component", "tls")}
}

// wrapHTTP returns l serving HTTPS when --http-tls-cert is set, else l.
func (p *processTLS) wrapHTTP(l net.Listener) (net.Listener, error) {
	if p.cfg.HTTPCert == "" {
		return l, nil
	}
	r, err := newCertReloader("http", p.cfg.HTTPCert, p.cfg.HTTPKey, "", []string{"http/1.1"}, p.cfg.RSASigner, p.log)
	if err != nil {
		return nil, err
	}
	p.reloaders = append(p.reloaders, r)
	return tls.NewListener(l, r.serverConfig()), nil
}

// listenMQTTS opens the MQTT over TLS listener when --mqtts-addr is set;
// life closes it in the end.
func (p *processTLS) listenMQTTS(ctx context.Context, life *lifecycle) error {
	if p.cfg.MQTTSAddr == "" {
		return nil
	}
	conf, err := p.mqttServerConfig()
	if err != nil {
		return err
	}
	ln, err := mqttbroker.Listen(ctx, p.cfg.MQTTSAddr)
	if err != nil {
		return fmt.Errorf("listen for MQTT over TLS on %s: %w", p.cfg.MQTTSAddr, err)
	}
	life.addListener("mqtts listener", ln)
	p.mqtts, p.mqttsConf = ln, conf
	return nil
}

// mqttServerConfig returns the tls.Config of the MQTT TLS listeners
// (mqtts, wss), loading the certificate on the first call: both serve
// the same files, reloaded once.
func (p *processTLS) mqttServerConfig() (*tls.Config, error) {
	if p.mqttConf != nil {
		return p.mqttConf, nil
	}
	r, err := newCertReloader("mqtt", p.cfg.MQTTCert, p.cfg.MQTTKey, p.cfg.MQTTClientCA, nil, p.cfg.RSASigner, p.log)
	if err != nil {
		return nil, err
	}
	p.reloaders = append(p.reloaders, r)
	p.mqttConf = r.serverConfig()
	return p.mqttConf, nil
}

// configureBroker applies the identity options to the broker's
// configuration (for mqtts and wss connections alike), and
// --allow-anonymous=auto to the TLS listener too: clients without
// credentials are allowed only if every MQTT listener is on loopback (the
// wss listener's is checked by mqttFront).
func (p *processTLS) configureBroker(bc *mqttbroker.Config, allowAnonymousSetting string) {
	if p.mqttConf == nil {
		return
	}
	bc.TLSIdentity, _ = mqttbroker.ParseTLSIdentity(p.cfg.MQTTIdentity) // validated
	bc.TLSRequireClientIDMatch = p.cfg.MQTTRequireClientIDMatch
	if p.mqtts != nil {
		bc.AllowAnonymous = bc.AllowAnonymous && allowAnonymous(allowAnonymousSetting, p.mqtts.Addr())
	}
}

// addMQTTS adds the component serving MQTT over TLS, after the plain
// listener's (so it stops first; Shutdown ends both).
func (p *processTLS) addMQTTS(life *lifecycle, broker *mqttbroker.Server) {
	p.broker = broker
	if p.mqtts == nil {
		return
	}
	ln, conf := p.mqtts, p.mqttsConf
	life.add(component{
		name: "mqtts server",
		run:  func(context.Context) error { return broker.ServeTLS(ln, conf) },
		stop: broker.Shutdown,
	})
}

// listening describes the TLS listeners for the start-up log line.
func (p *processTLS) listening() []any {
	var attrs []any
	if p.mqtts != nil {
		attrs = append(attrs, "mqtts", p.mqtts.Addr().String())
	}
	if p.cfg.HTTPCert != "" {
		attrs = append(attrs, "https", true)
	}
	return attrs
}

// component reloads the certificates on SIGHUP and when their files
// change. Without TLS it does nothing (and SIGHUP keeps its default).
func (p *processTLS) component() component {
	return component{name: "tls certificate reloader", run: p.watch}
}

func (p *processTLS) watch(ctx context.Context) error {
	if len(p.reloaders) == 0 {
		return nil
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var tick <-chan time.Time
	if p.cfg.ReloadEvery > 0 {
		ticker := time.NewTicker(p.cfg.ReloadEvery)
		defer ticker.Stop()
		tick = ticker.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			p.log.Info("SIGHUP: reloading TLS certificates")
			for _, r := range p.reloaders {
				r.reload(true)
			}
		case <-tick:
			for _, r := range p.reloaders {
				r.reload(false)
			}
		}
	}
}

var (
	tlsReloadsDesc   = prometheus.NewDesc("presenced_tls_certificate_reloads_total", "TLS certificates (and client CAs) reloaded from their files, by listener.", []string{"listener"}, nil)
	tlsFailuresDesc  = prometheus.NewDesc("presenced_tls_certificate_reload_failures_total", "Failed TLS certificate reloads (the previous certificate stays), by listener.", []string{"listener"}, nil)
	tlsNotAfterDesc  = prometheus.NewDesc("presenced_tls_certificate_not_after_seconds", "Expiry (Unix time) of the TLS certificate served, by listener.", []string{"listener"}, nil)
	tlsHandshakeDesc = prometheus.NewDesc("presenced_mqtt_tls_handshakes_total", "MQTT TLS handshakes completed.", nil, nil)
	tlsSignerDesc    = prometheus.NewDesc("presenced_tls_signer_info", "Who computes the handshake signatures of the TLS certificate served (openssl <version>, go), by listener: always 1.", []string{"listener", "signer"}, nil)
	tlsHSFailDesc    = prometheus.NewDesc("presenced_mqtt_tls_handshake_failures_total", "MQTT TLS handshakes that failed (no or a bad client certificate, not TLS, timeout).", nil, nil)
)

func (p *processTLS) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{tlsReloadsDesc, tlsFailuresDesc, tlsNotAfterDesc, tlsSignerDesc, tlsHandshakeDesc, tlsHSFailDesc} {
		ch <- d
	}
}

func (p *processTLS) Collect(ch chan<- prometheus.Metric) {
	for _, r := range p.reloaders {
		ch <- prometheus.MustNewConstMetric(tlsReloadsDesc, prometheus.CounterValue, float64(r.reloads.Load()), r.name)
		ch <- prometheus.MustNewConstMetric(tlsFailuresDesc, prometheus.CounterValue, float64(r.failures.Load()), r.name)
		ch <- prometheus.MustNewConstMetric(tlsNotAfterDesc, prometheus.GaugeValue, float64(r.notAfter.Load()), r.name)
		ch <- prometheus.MustNewConstMetric(tlsSignerDesc, prometheus.GaugeValue, 1, r.name, *r.signer.Load())
	}
	if p.broker != nil && p.mqtts != nil {
		s := p.broker.TLSStats()
		ch <- prometheus.MustNewConstMetric(tlsHandshakeDesc, prometheus.CounterValue, float64(s.Handshakes))
		ch <- prometheus.MustNewConstMetric(tlsHSFailDesc, prometheus.CounterValue, float64(s.HandshakeFailures))
	}
}

// certReloader serves a certificate (and client CA) loaded from files:
// every handshake takes the config current then (GetConfigForClient), so
// a reload affects new connections only, and a reload that fails keeps
// the previous files' config.
type certReloader struct {
	name                      string // the listener, a metric label: "mqtt" or "http"
	certFile, keyFile, caFile string
	nextProtos                []string // ALPN
	rsaSigner                 string   // --tls-rsa-signer
	log                       *slog.Logger

	mu      sync.Mutex // one load at a time
	stamps  []fileStamp
	current atomic.Pointer[tls.Config]

	reloads, failures, notAfter atomic.Int64
	signer                      atomic.Pointer[string] // who signs for the current key: a metric label
}

// fileStamp is what is checked for a change of a file.
type fileStamp struct {
	modTime time.Time
	size    int64
}

func newCertReloader(name, certFile, keyFile, caFile string, nextProtos []string, rsaSigner string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{name: name, certFile: certFile, keyFile: keyFile, caFile: caFile, nextProtos: nextProtos, rsaSigner: rsaSigner, log: log.With("listener", name)}
	r.stamps = r.stat()
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) files() []string {
	if r.caFile == "" {
		return []string{r.certFile, r.keyFile}
	}
	return []string{r.certFile, r.keyFile, r.caFile}
}

func (r *certReloader) stat() []fileStamp {
	stamps := make([]fileStamp, 0, 3)
	for _, name := range r.files() {
		var s fileStamp
		if fi, err := os.Stat(name); err == nil {
			s = fileStamp{modTime: fi.ModTime(), size: fi.Size()}
		}
		stamps = append(stamps, s)
	}
	return stamps
}

// load reads the files and makes them current. Errors name the file,
// never its contents.
func (r *certReloader) load() error {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("load TLS certificate %s with key %s: %w", r.certFile, r.keyFile, err)
	}
	signer, err := r.useRSASigner(&cert)
	if err != nil {
		return err
	}
	conf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: r.nextProtos}
	if r.caFile != "" {
		pem, err := os.ReadFile(r.caFile)
		if err != nil {
			return fmt.Errorf("read TLS client CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("TLS client CA file %s holds no PEM certificate", r.caFile)
		}
		conf.ClientCAs, conf.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	if fi, err := os.Stat(r.keyFile); err == nil && fi.Mode().Perm()&0o004 != 0 {
		r.log.Warn("TLS private key file is readable by every user of this machine; make it chmod 600 (or 640 for a group)", "file", r.keyFile, "mode", fi.Mode().Perm().String())
	}
	if leaf := cert.Leaf; leaf != nil {
		r.notAfter.Store(leaf.NotAfter.Unix())
	}
	r.current.Store(conf)
	if old := r.signer.Swap(&signer); old == nil || *old != signer {
		r.log.Info("TLS handshake signatures", "signer", signer)
	}
	return nil
}

// reload loads the files again if they changed since the last attempt,
// or always when forced (SIGHUP). A failure is logged and counted, and
// the current certificate stays.
func (r *certReloader) reload(force bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	stamps := r.stat()
	if !force && equalStamps(stamps, r.stamps) {
		return
	}
	r.stamps = stamps
	if err := r.load(); err != nil {
		r.failures.Add(1)
		r.log.Error("TLS certificate reload failed; still serving the previous certificate", "err", err)
		return
	}
	r.reloads.Add(1)
	r.log.Info("TLS certificate reloaded", "cert", r.certFile, "not_after", time.Unix(r.notAfter.Load(), 0).UTC())
}

func equalStamps(a, b []fileStamp) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].modTime.Equal(b[i].modTime) || a[i].size != b[i].size {
			return false
		}
	}
	return true
}

// serverConfig is the tls.Config of the listener: each handshake gets
// the current certificate, TLS 1.2 at least.
func (r *certReloader) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: r.nextProtos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.current.Load(), nil
		},
	}
}
