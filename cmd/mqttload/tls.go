package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
)

// loadTLS returns the client TLS configuration of -tls-ca for the broker at
// addr (its certificate must name the host), or nil (plain
// TCP) when caFile is empty. It offers X25519 only, the key exchange
// OpenSSL (mosquitto) and Go agree on by default, so that presenced and
// mosquitto are compared on the same handshake: Go's default would
// otherwise lead with the hybrid X25519MLKEM768, which mosquitto's
// OpenSSL lacks. No session resumption: every connect is a full handshake.
func loadTLS(caFile, addr string) (*tls.Config, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read -tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("-tls-ca %s holds no PEM certificate", caFile)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("broker address %q: %w", addr, err)
	}
	return &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12, CurvePreferences: []tls.CurveID{tls.X25519}}, nil
}
