package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// runHealth is "presenced health": it asks a running presenced whether it
// is ready (GET /readyz) and exits 0 if so, 1 if not — a healthcheck for
// containers, whose image has no curl. The default address is the one
// PRESENCE_HTTP_ADDR gives the process beside it, on loopback.
func runHealth(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("presenced health", flag.ContinueOnError)
	url := fs.String("url", readyURL(getenv("PRESENCE_HTTP_ADDR"), getenv("PRESENCE_HTTP_TLS_CERT") != ""), "readiness URL of the presenced to check (https:// when PRESENCE_HTTP_TLS_CERT is set)")
	timeout := fs.Duration("timeout", 3*time.Second, "most time the check may take")
	caFile := fs.String("cacert", "", "PEM file of the CA (or the certificate itself) to verify an https:// server with, instead of the system's roots")
	insecure := fs.Bool("insecure", false, "do not verify the https:// server's certificate (only for a check on loopback)")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	client, err := healthClient(*caFile, *insecure)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return usageError{fmt.Errorf("--url %q: %w", *url, err)}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("not healthy: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("not healthy: %s answered %s: %s", *url, resp.Status, body)
	}
	fmt.Fprintf(stdout, "healthy: %s answered %s\n", *url, resp.Status)
	return nil
}

// readyURL is the /readyz URL of an HTTP listen address, with an empty or
// unspecified host replaced by loopback.
func readyURL(addr string, https bool) string {
	scheme := "http://"
	if https {
		scheme = "https://"
	}
	if addr == "" {
		addr = ":8080"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return scheme + addr + "/readyz"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return scheme + net.JoinHostPort(host, port) + "/readyz"
}

// healthClient is the HTTP client of the check: for https:// it trusts the
// CAs of caFile when given (else the system's), or nothing when insecure.
func healthClient(caFile string, insecure bool) (*http.Client, error) {
	if caFile == "" && !insecure {
		return http.DefaultClient, nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, usageError{fmt.Errorf("--cacert: %w", err)}
		}
		conf.RootCAs = x509.NewCertPool()
		if !conf.RootCAs.AppendCertsFromPEM(pem) {
			return nil, usageError{fmt.Errorf("--cacert %s holds no PEM certificate", caFile)}
		}
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = conf
	return &http.Client{Transport: transport}, nil
}
