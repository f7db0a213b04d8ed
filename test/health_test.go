package test

import (
	"errors"
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// TestHealthCommandChecksARunningProcess runs "presenced health" as a
// container healthcheck would: exit 0 against a ready serve, exit 1 with
// the cause against an address where nothing listens.
func TestHealthCommandChecksARunningProcess(t *testing.T) {
	p := startServe(t, pgtest.URL(t))
	out, err := exec.Command(presencedBin, "health", "--url", "http://"+p.HTTPAddr+"/readyz").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "healthy: ") {
		t.Fatalf("health against a ready serve: %v, %s", err, out)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	out, err = exec.Command(presencedBin, "health", "--url", "http://"+closed+"/readyz").CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "not healthy") {
		t.Fatalf("health against %s: %v, %s; want exit 1 saying not healthy", closed, err, out)
	}
}
