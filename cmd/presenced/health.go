package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// runHealth is "presenced health": it asks a running presenced whether it
// is ready (GET /readyz) and exits 0 if so, 1 if not — a healthcheck for
// containers, whose image has no curl. The default address is the one
// PRESENCE_HTTP_ADDR gives the process beside it, on loopback.
func runHealth(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("presenced health", flag.ContinueOnError)
	url := fs.String("url", readyURL(getenv("PRESENCE_HTTP_ADDR")), "readiness URL of the presenced to check")
	timeout := fs.Duration("timeout", 3*time.Second, "most time the check may take")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return usageError{fmt.Errorf("--url %q: %w", *url, err)}
	}
	resp, err := http.DefaultClient.Do(req)
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
func readyURL(addr string) string {
	if addr == "" {
		addr = ":8080"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr + "/readyz"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz"
}
