package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/mqttbroker"
	"github.com/presenced/presenced/mqttbroker/proxyproto"
)

// listenConfig is MQTT over WebSocket and the PROXY protocol on the MQTT
// listeners (serve and broker modes).
type listenConfig struct {
	WSAddr string
	WSPath string
	// ProxyProtocol and WSProxyProtocol: off, v1, v2 or any, for
	// --mqtt-addr and --mqtt-ws-addr.
	ProxyProtocol   string
	WSProxyProtocol string
	// ProxyTrusted is --mqtt-proxy-trusted as given, comma-separated.
	ProxyTrusted string
}

// proxyHeaderTimeout bounds the wait for a PROXY protocol header (and, on
// a listener that takes one, an untrusted peer's first bytes).
const proxyHeaderTimeout = 5 * time.Second

func registerListenFlags(f *envFlags, c *listenConfig) {
	f.String(&c.WSAddr, "mqtt-ws-addr", "", "MQTT over WebSocket listen address (subprotocol mqtt, binary frames); empty: off")
	f.String(&c.WSPath, "mqtt-ws-path", "/mqtt", "HTTP path of the MQTT over WebSocket endpoint")
	f.String(&c.ProxyProtocol, "mqtt-proxy-protocol", "off", "PROXY protocol on --mqtt-addr: off, v1, v2 or any; peers in --mqtt-proxy-trusted must send the header, others must not")
	f.String(&c.WSProxyProtocol, "mqtt-ws-proxy-protocol", "off", "PROXY protocol on --mqtt-ws-addr: off, v1, v2 or any (as --mqtt-proxy-protocol)")
	f.String(&c.ProxyTrusted, "mqtt-proxy-trusted", "", "comma-separated addresses or CIDRs of the proxies that send the PROXY protocol header (required with --mqtt-proxy-protocol or --mqtt-ws-proxy-protocol)")
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

func (c listenConfig) proxyOn() bool {
	plain, _ := proxyVersions(c.ProxyProtocol)
	ws, _ := proxyVersions(c.WSProxyProtocol)
	return plain != 0 || ws != 0 && c.WSAddr != ""
}

func (c listenConfig) validate() []error {
	var errs []error
	for flag, v := range map[string]string{"--mqtt-proxy-protocol": c.ProxyProtocol, "--mqtt-ws-proxy-protocol": c.WSProxyProtocol} {
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
		errs = append(errs, errors.New("--mqtt-proxy-trusted has no effect without --mqtt-proxy-protocol or --mqtt-ws-proxy-protocol"))
	}
	if c.WSAddr != "" && !strings.HasPrefix(c.WSPath, "/") {
		errs = append(errs, fmt.Errorf("--mqtt-ws-path must start with /, not %q", c.WSPath))
	}
	return errs
}

// mqttFront is what stands between the MQTT listeners and the broker:
// the PROXY protocol on each, and the WebSocket listener. Each layer takes
// a net.Listener and gives one, so TLS (wss) can go under the WebSocket
// one.
type mqttFront struct {
	cfg       listenConfig
	maxPacket int
	log       *slog.Logger

	plainProxy *proxyproto.Listener
	wsProxy    *proxyproto.Listener
	ws         *mqttbroker.WebSocketListener
}

func newMQTTFront(cfg listenConfig, maxPacket int, log *slog.Logger) *mqttFront {
	return &mqttFront{cfg: cfg, maxPacket: maxPacket, log: log.With("component", "mqtt")}
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
	f.ws = mqttbroker.NewWebSocketListener(ln, mqttbroker.WebSocketConfig{
		Path: f.cfg.WSPath, MaxMessageSize: f.maxPacket, Log: f.log,
	})
	return nil
}

// configureBroker applies --allow-anonymous=auto to the WebSocket listener
// and the PROXY protocol: behind a proxy, a loopback listener's clients
// are anywhere, so auto then allows no client without credentials.
func (f *mqttFront) configureBroker(bc *mqttbroker.Config, allowAnonymousSetting string) {
	if f.ws != nil {
		bc.AllowAnonymous = bc.AllowAnonymous && allowAnonymous(allowAnonymousSetting, f.ws.Addr())
	}
	if f.cfg.proxyOn() && allowAnonymousSetting == "auto" && bc.AllowAnonymous {
		bc.AllowAnonymous = false
		f.log.Info("MQTT clients without credentials are refused: behind the PROXY protocol clients come from anywhere (--allow-anonymous=auto); set --allow-anonymous=true or credentials")
	}
}

// addWS adds the component serving MQTT over WebSocket, after the plain
// listener's (so it stops first; Shutdown ends both).
func (f *mqttFront) addWS(life *lifecycle, broker *mqttbroker.Server) {
	if f.ws == nil {
		return
	}
	ws := f.ws
	life.add(component{
		name: "mqtt websocket server",
		run:  func(context.Context) error { return broker.Serve(ws) },
		stop: broker.Shutdown,
	})
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
	return attrs
}

var (
	wsHandshakesDesc = prometheus.NewDesc("presenced_mqtt_ws_handshakes_total",
		"MQTT over WebSocket opening handshakes, by result: accepted, failed (bad request, wrong path or subprotocol, timeout), over_limit.",
		[]string{"result"}, nil)
	proxyConnsDesc = prometheus.NewDesc("presenced_mqtt_proxy_connections_total",
		"Connections on an MQTT listener with the PROXY protocol, by listener (mqtt, ws) and result: proxied, local, direct, untrusted (refused), invalid (refused), timeout (refused), over_limit.",
		[]string{"listener", "result"}, nil)
)

func (f *mqttFront) Describe(ch chan<- *prometheus.Desc) {
	ch <- wsHandshakesDesc
	ch <- proxyConnsDesc
}

func (f *mqttFront) Collect(ch chan<- prometheus.Metric) {
	if f.ws != nil {
		s := f.ws.Stats()
		for result, n := range map[string]int64{"accepted": s.Accepted, "failed": s.Failed, "over_limit": s.OverLimit} {
			ch <- prometheus.MustNewConstMetric(wsHandshakesDesc, prometheus.CounterValue, float64(n), result)
		}
	}
	for name, pl := range map[string]*proxyproto.Listener{"mqtt": f.plainProxy, "ws": f.wsProxy} {
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

// openBrokerListeners opens what a process with the broker (serve, broker)
// listens on, each added to life: the plain MQTT listener (behind the
// PROXY protocol when configured), the HTTP listener (HTTPS when
// configured), and the MQTT over TLS and WebSocket listeners when
// configured. The TLS certificates and the front are returned for the
// broker's configuration and metrics.
func openBrokerListeners(ctx context.Context, cfg config, life *lifecycle, log *slog.Logger) (
	mqttListener, httpListener net.Listener, certs *processTLS, front *mqttFront, err error) {
	if mqttListener, err = mqttbroker.Listen(ctx, cfg.MQTTAddr); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("listen for MQTT on %s: %w", cfg.MQTTAddr, err)
	}
	life.addListener("mqtt listener", mqttListener)
	if httpListener, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("listen for HTTP on %s: %w", cfg.HTTPAddr, err)
	}
	life.addListener("http listener", httpListener)
	certs = newProcessTLS(cfg.TLS, log)
	if httpListener, err = certs.wrapHTTP(httpListener); err != nil {
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
	return mqttListener, httpListener, certs, front, nil
}
