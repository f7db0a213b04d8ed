package mqttbroker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/presenced/presenced/presence"
)

// TLSIdentity says what a verified client certificate (mutual TLS) stands
// for on a connection served by ServeTLS.
type TLSIdentity int

const (
	// TLSIdentityNone: the certificate is checked by the handshake only;
	// the CONNECT's user name and password are authenticated as on a
	// plain connection.
	TLSIdentityNone TLSIdentity = iota
	// TLSIdentityCN: the certificate authenticates the client and its
	// subject CN is the user name (for the Authorizer and the connect
	// event), whatever the CONNECT says; the Authenticator is not asked.
	// A certificate without a CN is refused with CONNACK 0x05.
	TLSIdentityCN
)

// ParseTLSIdentity reads "none" or "cn".
func ParseTLSIdentity(s string) (TLSIdentity, error) {
	switch s {
	case "", "none":
		return TLSIdentityNone, nil
	case "cn":
		return TLSIdentityCN, nil
	}
	return 0, fmt.Errorf("tls identity must be none or cn, not %q", s)
}

// TLSStats are the counters of the TLS listeners.
type TLSStats struct {
	Handshakes        int64 // TLS handshakes completed
	HandshakeFailures int64 // TLS handshakes that failed or timed out (bad or missing client certificate, not TLS, …)
}

type tlsStats struct {
	handshakes, handshakeFailures atomic.Int64
}

// TLSStats returns the counters of the TLS listeners.
func (s *Server) TLSStats() TLSStats {
	return TLSStats{Handshakes: s.tlsStats.handshakes.Load(), HandshakeFailures: s.tlsStats.handshakeFailures.Load()}
}

// ServeTLS is Serve for MQTT over TLS (conventionally port 8883): every
// accepted connection is a TLS server connection of config. The handshake
// runs on the connection's own goroutine, within Config.ConnectTimeout
// together with the CONNECT, so a slow or silent peer holds up nobody.
// config may serve certificates that change (GetCertificate,
// GetConfigForClient): each handshake uses what config gives it then, and
// established connections are unaffected. Idle TLS connections are parked
// like plain ones (see tlsBuffered).
func (s *Server) ServeTLS(ln net.Listener, config *tls.Config) error {
	return s.Serve(tls.NewListener(ln, config))
}

// useTLS prepares a TLS connection for parking: the idle poller waits on
// the TCP socket beneath, while the bytes are always read through the
// tls.Conn (the reader has raw but no rawRead).
func (c *conn) useTLS(tc *tls.Conn) {
	sc, ok := tc.NetConn().(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	c.reader.raw = raw
	if c.s.idle != nil {
		c.parkToken = c.s.idle.token()
	}
}

// socketOf returns the TCP connection beneath nc.
func socketOf(nc net.Conn) net.Conn {
	if tc, ok := nc.(*tls.Conn); ok {
		return tc.NetConn()
	}
	return nc
}

// handshakeTLS completes the TLS handshake of a TLS connection (under the
// CONNECT deadline already set) and reports whether it may go on; plain
// connections always may.
func (c *conn) handshakeTLS() bool {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return true
	}
	if err := tc.Handshake(); err != nil {
		c.s.tlsStats.handshakeFailures.Add(1)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.s.stats.connectTimeouts.Add(1)
		}
		// Debug: a port scanner or a client with the wrong CA would fill
		// the log otherwise; the counter says it happens.
		c.s.log.Debug("mqtt tls handshake failed", "remote", c.remoteAddr(), "err", err)
		c.fail(err)
		return false
	}
	c.s.tlsStats.handshakes.Add(1)
	return true
}

// tlsAdmission applies Config.TLSIdentity and TLSRequireClientIDMatch to
// a CONNECT with client id clientID. certUser is the user name the
// certificate gives (TLSIdentityCN), which then replaces authentication;
// code is connAccepted or the refusing CONNACK code.
func (c *conn) tlsAdmission(clientID string) (certUser string, code byte, err error) {
	cfg := &c.s.cfg
	tc, ok := tlsOf(c.nc)
	if !ok || (cfg.TLSIdentity == TLSIdentityNone && !cfg.TLSRequireClientIDMatch) {
		return "", connAccepted, nil
	}
	state := tc.ConnectionState()
	if len(state.VerifiedChains) == 0 || len(state.PeerCertificates) == 0 {
		return "", connRefusedNotAuth, errors.New("no verified client certificate")
	}
	cn := state.PeerCertificates[0].Subject.CommonName
	if cn == "" {
		return "", connRefusedNotAuth, errors.New("client certificate has no subject CN")
	}
	if cfg.TLSRequireClientIDMatch && clientID != cn {
		// 0x02: the id is well-formed but not one this client may use.
		return "", connRefusedIdentifier, fmt.Errorf("client id is not the certificate's CN %q", truncateForLog(cn))
	}
	if cfg.TLSIdentity == TLSIdentityCN {
		return cn, connAccepted, nil
	}
	return "", connAccepted, nil
}

// tlsDetails puts the TLS version and, with a verified client
// certificate, its subject on a connect event.
func (c *conn) tlsDetails(e *presence.Event) {
	tc, ok := tlsOf(c.nc)
	if !ok {
		return
	}
	state := tc.ConnectionState()
	e.TLSVersion = tls.VersionName(state.Version)
	if len(state.VerifiedChains) > 0 && len(state.PeerCertificates) > 0 {
		e.TLSClientSubject = state.PeerCertificates[0].Subject.String()
	}
}

// longAgo is a read deadline that has always passed: a read under it
// returns only what needs no waiting.
var longAgo = time.Unix(1, 0)

// tlsBuffered is called before parking a connection: it reports whether
// a TLS connection may have bytes to read that the socket's readiness
// would not announce — plaintext decrypted but not yet returned, or whole
// records already read from the socket. It reads what the tls.Conn can
// give without waiting (a read whose deadline has passed: the runtime
// does not even try the socket then) into the reader's buffer, so that
// the caller goes on reading instead of parking. A record only partly
// received stays in the tls.Conn; the rest is still to come on the
// socket, which wakes the poller. Plain connections have nothing hidden.
// Under WebSocket framing (wss) the read goes through the framing, which
// decodes what TLS gives (and answers a ping in it) as on any read.
func (c *conn) tlsBuffered() bool {
	if _, ok := tlsOf(c.nc); !ok || c.parkToken == 0 {
		return false
	}
	c.nc.SetReadDeadline(longAgo)
	err := c.reader.fill(c.nc)
	// Reading goes on under the keepalive deadline (set by readPackets
	// before each read) or none.
	c.nc.SetReadDeadline(time.Time{})
	// Anything but "nothing without waiting" — bytes, or an error, which
	// tls.Conn keeps and returns again — is for the reading goroutine.
	return !errors.Is(err, os.ErrDeadlineExceeded)
}
