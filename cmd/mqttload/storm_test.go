package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The storm scenario against a real `presenced serve` (real broker,
// outbox, consumer and PostgreSQL): every client is connected and kept
// open, answered online over REST, then closed and answered offline.
func TestStormIntoServe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts presenced serve")
	}
	mqttAddr, httpAddr := startServe(t)

	var out bytes.Buffer
	fs := flag.NewFlagSet("storm", flag.ContinueOnError)
	err := storm(context.Background(), fs, []string{
		"-mqtt", mqttAddr, "-http", httpAddr, "-n", "300", "-workers", "20", "-duration", "30s", "-label", "serve",
	}, &out)
	if err != nil {
		t.Fatalf("storm: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"storm serve: 300 of 300 clients connected",
		"; 0 failed",
		"all 300 connected answered online over REST",
		"all 300 closed (DISCONNECT)",
		"all answered offline",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("storm output lacks %q:\n%s", want, out.String())
		}
	}
}

// A client that never connects is never answered online: the poller gives
// up at its deadline with an error that says how many are missing, rather
// than report a time.
func TestStormPollerWaitsForEveryClient(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts presenced serve")
	}
	_, httpAddr := startServe(t)
	poll, err := newOnlinePoll(httpAddr, "", []string{"storm-never-connected"}, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer poll.close()
	q := newAckedQueue(1)
	q.add(0)
	q.finish()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	res := poll.until(ctx, true, q)
	if res.err == nil || !strings.Contains(res.err.Error(), "1 of 1 queued clients still not answered online=true") {
		t.Fatalf("until for a client that never connected: %v, want it still not answered", res.err)
	}
	if res.requests == 0 {
		t.Fatal("the poller never asked")
	}
	// The same id is answered offline at once.
	q = newAckedQueue(1)
	q.add(0)
	q.finish()
	if res := poll.until(context.Background(), false, q); res.err != nil || len(res.lags) != 1 {
		t.Fatalf("until offline: %+v", res)
	}
}

// startServe builds presenced and runs `presenced serve` on loopback
// against a fresh test database until the test ends; it returns the MQTT
// and HTTP addresses once /readyz answers 200.
func startServe(t *testing.T) (mqttAddr, httpAddr string) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "presenced")
	build := exec.Command("go", "build", "-o", bin, "github.com/presenced/presenced/cmd/presenced")
	if output, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build presenced: %v\n%s", err, output)
	}
	mqttAddr, httpAddr = freeLoopbackAddr(t), freeLoopbackAddr(t)
	logPath := filepath.Join(dir, "presenced.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close() // the child has its own descriptor
	logs := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	cmd := exec.Command(bin, "serve", "--mqtt-addr", mqttAddr, "--http-addr", httpAddr,
		"--data-dir", filepath.Join(dir, "data"), "--database-url", pgtest.URL(t), "--node", "storm-test")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), "HOME="+dir)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start presenced serve: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return mqttAddr, httpAddr
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("presenced serve exited before it was ready: %v\n%s", err, logs())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("presenced serve not ready after 60s\n%s", logs())
		}
	}
}

// nextTestPort goes round 20000–32767 from a start that differs between
// runs, so that parallel test binaries rarely meet.
var nextTestPort = 20000 + int(time.Now().UnixNano()%12000)

// freeLoopbackAddr returns a loopback address whose port was free a moment
// ago, from below the kernel's ephemeral range so that no outgoing
// connection takes it before the child binds it (see test/process_test.go).
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	for range 2000 {
		addr := fmt.Sprintf("127.0.0.1:%d", nextTestPort)
		if nextTestPort++; nextTestPort > 32767 {
			nextTestPort = 20000
		}
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			return addr
		}
	}
	t.Fatal("no free port in 20000–32767")
	return ""
}
