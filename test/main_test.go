// Package test holds the end-to-end tests: they build the presenced binary,
// start it on loopback ports against a real PostgreSQL, and drive it with
// independent clients (paho.mqtt.golang, raw sockets, plain HTTP).
package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// presencedBin is the binary under test, built once per test run.
var presencedBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "presenced-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "make temp dir:", err)
		os.Exit(1)
	}
	presencedBin = filepath.Join(dir, "presenced")
	build := exec.Command("go", "build", "-o", presencedBin, "github.com/presenced/presenced/cmd/presenced")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build presenced:", err)
		os.Exit(1)
	}
	code := m.Run()
	pgtest.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}
