package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/mqttbroker"
	"github.com/presenced/presenced/mqttbroker/proxyproto"
)

// listenConfig is MQTT over WebSocket and the PROXY protocol on the MQTT
// listeners (serve and broker modes). The address of MQTT over secure
// WebSocket, --mqtt-wss-addr, is a TLS setting (tlsConfig.MQTTWSSAddr),
// checked with the certificate files it needs; its path is WSPath.
type listenConfig struct {
	WSAddr string
	WSPath string
	// ProxyProtocol, WSProxyProtocol and WSSProxyProtocol: off, v1, v2 or
	// any, for --mqtt-addr, --mqtt-ws-addr and --mqtt-wss-addr.
	ProxyProtocol    string
	WSProxyProtocol  string
	WSSProxyProtocol string
	// ProxyTrusted is --mqtt-proxy-trusted as given, comma-separated.
	ProxyTrusted string
}

// proxyHeaderTimeout bounds the wait for a PROXY protocol header (and, on
// a listener that takes one, an untrusted peer's first bytes).
const proxyHeaderTimeout = 5 * time.Second

func registerListenFlags(f *envFlags, c *listenConfig) {
	f.String(&c.WSAddr, "mqtt-ws-addr", "", "MQTT over WebSocket listen address (subprotocol mqtt, binary frames); empty: off")
	f.String(&c.WSPath, "mqtt-ws-path", "/mqtt", "HTTP path of the MQTT over WebSocket endpoint (ws and wss)")
	f.String(&c.ProxyProtocol, "mqtt-proxy-protocol", "off", "PROXY protocol on --mqtt-addr: off, v1, v2 or any; peers in --mqtt-proxy-trusted must send the header, others must not")
	f.String(&c.WSProxyProtocol, "mqtt-ws-proxy-protocol", "off", "PROXY protocol on --mqtt-ws-addr: off, v1, v2 or any (as --mqtt-proxy-protocol)")
	f.String(&c.WSSProxyProtocol, "mqtt-wss-proxy-protocol", "off", "PROXY protocol on --mqtt-wss-addr (before the TLS handshake): off, v1, v2 or any (as --mqtt-proxy-protocol)")
	f.String(&c.ProxyTrusted, "mqtt-proxy-trusted", "", "comma-separated addresses or CIDRs of the proxies that send the PROXY protocol header (required with any --mqtt-*proxy-protocol)")
}

// proxyVersions maps a --mqtt-*proxy-protocol value to the versions it
// accepts; 0 is off.
func proxyVersions(v string) (proxyproto.Versions, bool) {
	switch v {
	case "", "off":
		return 0, true
	case "v1":
		return proxyproto.V1, true
	case "v2":
		return proxyproto.V2, true
	case "any":
		return proxyproto.Any, true
	}
	return 0, false
}

// trusted parses --mqtt-proxy-trusted (validated).
func (c listenConfig) trusted() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range splitList(c.ProxyTrusted) {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("--mqtt-proxy-trusted: %q is neither an address nor a CIDR", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// proxyOn reports whether a listener takes the PROXY protocol. The wss
// one counts whenever its setting is on: without --mqtt-wss-addr that is
// an error (wssProxyWithoutListener).
func (c listenConfig) proxyOn() bool {
	plain, _ := proxyVersions(c.ProxyProtocol)
	ws, _ := proxyVersions(c.WSProxyProtocol)
	wss, _ := proxyVersions(c.WSSProxyProtocol)
	return plain != 0 || ws != 0 && c.WSAddr != "" || wss != 0
}

// wssProxyWithoutListener is the check of --mqtt-wss-proxy-protocol
// against --mqtt-wss-addr, which is in the TLS settings (config.validate
// runs it, with the other flag checks).
func (c listenConfig) wssProxyWithoutListener(wssAddr string) error {
	if wss, _ := proxyVersions(c.WSSProxyProtocol); wss != 0 && wssAddr == "" {
		return errors.New("--mqtt-wss-proxy-protocol needs --mqtt-wss-addr")
	}
	return nil
}

func (c listenConfig) validate() []error {
	var errs []error
	for flag, v := range map[string]string{"--mqtt-proxy-protocol": c.ProxyProtocol, "--mqtt-ws-proxy-protocol": c.WSProxyProtocol,
		"--mqtt-wss-proxy-protocol": c.WSSProxyProtocol} {
		if _, ok := proxyVersions(v); !ok {
			errs = append(errs, fmt.Errorf("%s must be off, v1, v2 or any, not %q", flag, v))
		}
	}
	if ws, _ := proxyVersions(c.WSProxyProtocol); ws != 0 && c.WSAddr == "" {
		errs = append(errs, errors.New("--mqtt-ws-proxy-protocol needs --mqtt-ws-addr"))
	}
	trusted, err := c.trusted()
	switch {
	case err != nil:
		errs = append(errs, err)
	case c.proxyOn() && len(trusted) == 0:
		errs = append(errs, errors.New("the PROXY protocol needs --mqtt-proxy-trusted: the addresses of the proxies that send the header (anyone else could forge a client address)"))
	case !c.proxyOn() && len(trusted) > 0:
		errs = append(errs, errors.New("--mqtt-proxy-trusted has no effect without --mqtt-proxy-protocol, --mqtt-ws-proxy-protocol or --mqtt-wss-proxy-protocol"))
	}
	// The path serves ws and wss; a command without these flags has none.
	if (c.WSAddr != "" || c.WSPath != "") && !strings.HasPrefix(c.WSPath, "/") {
		errs = append(errs, fmt.Errorf("--mqtt-ws-path must start with /, not %q", c.WSPath))
	}
	return errs
}

// mqttFront is what stands between the MQTT listeners and the broker:
// the PROXY protocol on each, and the WebSocket listeners. Each layer
// takes a net.Listener and gives one: wss is TCP, then the PROXY protocol
// (optional), then TLS, then WebSocket.
type mqttFront struct {
	cfg       listenConfig
	maxPacket int
	log       *slog.Logger

	plainProxy *proxyproto.Listener
	wsProxy    *proxyproto.Listener
	ws         *mqttbroker.WebSocketListener
	wssProxy   *proxyproto.Listener
	wss        *mqttbroker.WebSocketListener

	// anonymous is whether the broker admits clients without credentials,
	// true until configureBroker decides (the WebSocket listeners serve
	// handshakes from the start): while it is, a web page of another site
	// may not connect over WebSocket, or any page on the web could make a
	// browser on this machine connect as any client id (wsOriginAllowed).
	anonymous atomic.Bool
}

func newMQTTFront(cfg listenConfig, maxPacket int, log *slog.Logger) *mqttFront {
	f := &mqttFront{cfg: cfg, maxPacket: maxPacket, log: log.With("component", "mqtt")}
	f.anonymous.Store(true)
	return f
}

// wsOriginAllowed is the WebSocket listeners' OriginAllowed: with clients
// admitted without credentials, only pages served from this machine
// (loopback host names); otherwise any, since a page must then bring
// credentials of its own (a browser attaches none to MQTT).
func (f *mqttFront) wsOriginAllowed(host string) bool {
	return !f.anonymous.Load() || loopbackHostname(host)
}

// proxy puts the PROXY protocol in front of ln when versions is not off.
func (f *mqttFront) proxy(ln net.Listener, setting, name string) (net.Listener, *proxyproto.Listener) {
	versions, _ := proxyVersions(setting)
	if versions == 0 {
		return ln, nil
	}
	trusted, _ := f.cfg.trusted() // validated
	pl := proxyproto.NewListener(ln, proxyproto.Config{Versions: versions, Trusted: trusted,
		Timeout: proxyHeaderTimeout, Name: name, Log: f.log})
	return pl, pl
}

// wrapPlain puts --mqtt-proxy-protocol in front of the --mqtt-addr listener.
func (f *mqttFront) wrapPlain(ln net.Listener) net.Listener {
	ln, f.plainProxy = f.proxy(ln, f.cfg.ProxyProtocol, "mqtt")
	return ln
}

// listenWS opens --mqtt-ws-addr, if set.
func (f *mqttFront) listenWS(ctx context.Context, life *lifecycle) error {
	if f.cfg.WSAddr == "" {
		return nil
	}
	ln, err := mqttbroker.Listen(ctx, f.cfg.WSAddr)
	if err != nil {
		return fmt.Errorf("listen for MQTT over WebSocket on %s: %w", f.cfg.WSAddr, err)
	}
	life.addListener("mqtt websocket listener", ln)
	ln, f.wsProxy = f.proxy(ln, f.cfg.WSProxyProtocol, "ws")
	f.ws = mqttbroker.NewWebSocketListener(ln, f.wsConfig())
	return nil
}

func (f *mqttFront) wsConfig() mqttbroker.WebSocketConfig {
	return mqttbroker.WebSocketConfig{Path: f.cfg.WSPath, MaxMessageSize: f.maxPacket, OriginAllowed: f.wsOriginAllowed, Log: f.log}
}

// listenWSS opens MQTT over secure WebSocket on addr (--mqtt-wss-addr),
// if set, with the certificate of --mqtts-addr: TLS beneath the
// WebSocket listener, and the PROXY protocol beneath TLS (a TCP balancer
// does not terminate TLS).
func (f *mqttFront) listenWSS(ctx context.Context, life *lifecycle, addr string, certs *processTLS) error {
	if addr == "" {
		return nil
	}
	conf, err := certs.mqttServerConfig()
	if err != nil {
		return err
	}
	ln, err := mqttbroker.Listen(ctx, addr)
	if err != nil {
		return fmt.Errorf("listen for MQTT over secure WebSocket on %s: %w", addr, err)
	}
	life.addListener("mqtt secure websocket listener", ln)
	ln, f.wssProxy = f.proxy(ln, f.cfg.WSSProxyProtocol, "wss")
	f.wss = mqttbroker.NewWebSocketListener(tls.NewListener(ln, conf), f.wsConfig())
	return nil
}

// configureBroker applies --allow-anonymous=auto to the WebSocket listener
// and the PROXY protocol: behind a proxy, a loopback listener's clients
// are anywhere, so auto then allows no client without credentials.
func (f *mqttFront) configureBroker(bc *mqttbroker.Config, allowAnonymousSetting string) {
	for _, wl := range []*mqttbroker.WebSocketListener{f.ws, f.wss} {
		if wl != nil {
			bc.AllowAnonymous = bc.AllowAnonymous && allowAnonymous(allowAnonymousSetting, wl.Addr())
		}
	}
	if f.cfg.proxyOn() && allowAnonymousSetting == "auto" && bc.AllowAnonymous {
		bc.AllowAnonymous = false
		f.log.Info("MQTT clients without credentials are refused: behind the PROXY protocol clients come from anywhere (--allow-anonymous=auto); set --allow-anonymous=true or credentials")
	}
	f.anonymous.Store(bc.AllowAnonymous)
}

// addWS adds the components serving MQTT over WebSocket and secure
// WebSocket, after the plain listener's (so they stop first; Shutdown ends
// all).
func (f *mqttFront) addWS(life *lifecycle, broker *mqttbroker.Server) {
	for _, l := range []struct {
		name string
		wl   *mqttbroker.WebSocketListener
	}{{"mqtt websocket server", f.ws}, {"mqtt secure websocket server", f.wss}} {
		if l.wl == nil {
			continue
		}
		wl := l.wl
		life.add(component{
			name: l.name,
			run:  func(context.Context) error { return broker.Serve(wl) },
			stop: broker.Shutdown,
		})
	}
}

// listening describes the listeners for the start-up log line.
func (f *mqttFront) listening() []any {
	var attrs []any
	if f.ws != nil {
		attrs = append(attrs, "mqtt_ws", f.ws.Addr().String()+f.cfg.WSPath)
	}
	if f.plainProxy != nil {
		attrs = append(attrs, "mqtt_proxy_protocol", f.cfg.ProxyProtocol)
	}
	if f.wsProxy != nil {
		attrs = append(attrs, "mqtt_ws_proxy_protocol", f.cfg.WSProxyProtocol)
	}
	if f.wss != nil {
		attrs = append(attrs, "mqtt_wss", f.wss.Addr().String()+f.cfg.WSPath)
	}
	if f.wssProxy != nil {
		attrs = append(attrs, "mqtt_wss_proxy_protocol", f.cfg.WSSProxyProtocol)
	}
	return attrs
}

var (
	wsHandshakesDesc = prometheus.NewDesc("presenced_mqtt_ws_handshakes_total",
		"MQTT over WebSocket opening handshakes, by result: accepted, failed (bad request, wrong path or subprotocol, timeout), over_limit.",
		[]string{"result"}, nil)
	wssHandshakesDesc = prometheus.NewDesc("presenced_mqtt_wss_handshakes_total",
		"MQTT over secure WebSocket opening handshakes (TLS, then WebSocket), by result: accepted, failed (a failed TLS handshake, or as for ws), over_limit.",
		[]string{"result"}, nil)
	proxyConnsDesc = prometheus.NewDesc("presenced_mqtt_proxy_connections_total",
		"Connections on an MQTT listener with the PROXY protocol, by listener (mqtt, ws, wss) and result: proxied, local, direct, untrusted (refused), invalid (refused), timeout (refused), over_limit.",
		[]string{"listener", "result"}, nil)
)

func (f *mqttFront) Describe(ch chan<- *prometheus.Desc) {
	ch <- wsHandshakesDesc
	ch <- wssHandshakesDesc
	ch <- proxyConnsDesc
}

func (f *mqttFront) Collect(ch chan<- prometheus.Metric) {
	for desc, wl := range map[*prometheus.Desc]*mqttbroker.WebSocketListener{wsHandshakesDesc: f.ws, wssHandshakesDesc: f.wss} {
		if wl == nil {
			continue
		}
		s := wl.Stats()
		for result, n := range map[string]int64{"accepted": s.Accepted, "failed": s.Failed, "over_limit": s.OverLimit} {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(n), result)
		}
	}
	for name, pl := range map[string]*proxyproto.Listener{"mqtt": f.plainProxy, "ws": f.wsProxy, "wss": f.wssProxy} {
		if pl == nil {
			continue
		}
		s := pl.Stats()
		for result, n := range map[string]int64{"proxied": s.Proxied, "local": s.Local, "direct": s.Direct,
			"untrusted": s.Untrusted, "invalid": s.Invalid, "timeout": s.Timeout, "over_limit": s.OverLimit} {
			ch <- prometheus.MustNewConstMetric(proxyConnsDesc, prometheus.CounterValue, float64(n), name, result)
		}
	}
}

// httpFront is what stands before the HTTP server of every mode: the
// process's TLS certificates (HTTPS when configured, MQTT over TLS too)
// and the bound on HTTP connections (--http-max-connections). It is one
// Prometheus collector for both.
type httpFront struct {
	*processTLS
	conns *connLimitListener
}

func (h *httpFront) Describe(ch chan<- *prometheus.Desc) {
	h.processTLS.Describe(ch)
	h.conns.Describe(ch)
}

func (h *httpFront) Collect(ch chan<- prometheus.Metric) {
	h.processTLS.Collect(ch)
	h.conns.Collect(ch)
}

// listenHTTP opens the HTTP listener of every mode, added to life: bounded
// in connections, HTTPS when configured.
func listenHTTP(cfg config, life *lifecycle, log *slog.Logger) (net.Listener, *httpFront, error) {
	listener, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen for HTTP on %s: %w", cfg.HTTPAddr, err)
	}
	life.addListener("http listener", listener)
	front := &httpFront{processTLS: newProcessTLS(cfg.TLS, log),
		conns: newConnLimitListener(listener, connectionLimit(cfg.HTTPMaxConns, "http", httpConnectionsForFileLimit, log))}
	if listener, err = front.wrapHTTP(front.conns); err != nil {
		return nil, nil, err
	}
	return listener, front, nil
}

// openBrokerListeners opens what a process with the broker (serve, broker)
// listens on, each added to life: the plain MQTT listener (behind the
// PROXY protocol when configured), the HTTP listener (HTTPS when
// configured), and the MQTT over TLS, WebSocket and secure WebSocket
// listeners when configured. The TLS certificates and the front are returned for the
// broker's configuration and metrics.
func openBrokerListeners(ctx context.Context, cfg config, life *lifecycle, log *slog.Logger) (
	mqttListener, httpListener net.Listener, certs *httpFront, front *mqttFront, err error) {
	if mqttListener, err = mqttbroker.Listen(ctx, cfg.MQTTAddr); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("listen for MQTT on %s: %w", cfg.MQTTAddr, err)
	}
	life.addListener("mqtt listener", mqttListener)
	if httpListener, certs, err = listenHTTP(cfg, life, log); err != nil {
		return nil, nil, nil, nil, err
	}
	if err := certs.listenMQTTS(ctx, life); err != nil {
		return nil, nil, nil, nil, err
	}
	front = newMQTTFront(cfg.Listen, cfg.MQTT.MaxPacketKiB<<10, log)
	mqttListener = front.wrapPlain(mqttListener)
	if err := front.listenWS(ctx, life); err != nil {
		return nil, nil, nil, nil, err
	}
	if err := front.listenWSS(ctx, life, cfg.TLS.MQTTWSSAddr, certs.processTLS); err != nil {
		return nil, nil, nil, nil, err
	}
	return mqttListener, httpListener, certs, front, nil
}
