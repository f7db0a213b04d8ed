package test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

// proc is one running presenced process.
type proc struct {
	t        *testing.T
	cmd      *exec.Cmd
	done     chan struct{}
	exitErr  error
	logs     *syncBuffer
	MQTTAddr string
	HTTPAddr string
	DBURL    string
	Node     string
	DataDir  string
	Env      []string // extra environment, e.g. test hooks
	// Command is the presenced command: serve (default), api, broker or consumer.
	Command string
	// Args are extra flags given at every start.
	Args []string
	// Wrapper, when set, runs presenced through another program (e.g.
	// prlimit to lower its file limit): Wrapper[0] Wrapper[1:]… presenced args….
	Wrapper []string
}

// syncBuffer collects a process's output for failure reports.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// warnings returns the last max lines of a process's text log at level
// WARN or ERROR: a failing test shows what its processes complained of
// (a lost change feed, a retried batch) without their whole debug log.
func warnings(log string, max int) string {
	var lines []string
	for line := range strings.Lines(log) {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			lines = append(lines, line)
		}
	}
	if len(lines) > max {
		lines = lines[len(lines)-max:]
	}
	if len(lines) == 0 {
		return "(none)\n"
	}
	return strings.Join(lines, "")
}

// freeAddr returns a loopback address with a port that was free a moment
// ago, for a child process to listen on. The port comes from below the
// kernel's ephemeral range (32768–60999 by default): a port from that range
// (what listening on ":0" gives) can be handed to any outgoing connection
// on the machine before the child binds it — a CI run failed on "address
// already in use" that way. Ports go round from a random start, so parallel
// test binaries rarely meet, and each is checked free before it is given.
func freeAddr(t *testing.T) string {
	t.Helper()
	for range 2000 {
		portMu.Lock()
		port := nextPort
		nextPort++
		if nextPort >= 32768 {
			nextPort = 20000
		}
		portMu.Unlock()
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			return addr
		}
	}
	t.Fatal("no free port in 20000–32767")
	return ""
}

var (
	portMu   sync.Mutex
	nextPort = 20000 + rand.IntN(12000)
)

// startServe starts "presenced serve" on fresh loopback ports against dbURL
// and waits until it is ready.
func startServe(t *testing.T, dbURL string, extraArgs ...string) *proc {
	t.Helper()
	p := &proc{t: t, MQTTAddr: freeAddr(t), HTTPAddr: freeAddr(t), DBURL: dbURL, Node: "node-" + t.Name(), DataDir: t.TempDir()}
	p.start(extraArgs...)
	return p
}

// start (re)starts the process on the same addresses.
func (p *proc) start(extraArgs ...string) {
	p.t.Helper()
	command := cmp.Or(p.Command, "serve")
	args := []string{command, "--http-addr", p.HTTPAddr, "--data-dir", p.DataDir, "--log-level", "debug"}
	if p.MQTTAddr != "" {
		args = append(args, "--mqtt-addr", p.MQTTAddr, "--node", p.Node)
	}
	if p.DBURL != "" {
		args = append(args, "--database-url", p.DBURL)
	}
	args = append(append(args, p.Args...), extraArgs...)
	p.logs = &syncBuffer{}
	if len(p.Wrapper) > 0 {
		p.cmd = exec.Command(p.Wrapper[0], append(append(p.Wrapper[1:len(p.Wrapper):len(p.Wrapper)], presencedBin), args...)...)
	} else {
		p.cmd = exec.Command(presencedBin, args...)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	// HOME in the data directory: the RocketMQ client keeps a broadcasting
	// consumer's offsets under $HOME, which must not land in the test tree.
	p.cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + p.DataDir}, p.Env...)
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start presenced %s: %v", command, err)
	}
	p.done = make(chan struct{})
	go func() {
		p.exitErr = p.cmd.Wait()
		close(p.done)
	}()
	p.t.Cleanup(p.kill)
	logs := p.logs
	p.t.Cleanup(func() { // after kill (cleanups run last first)
		if p.t.Failed() {
			p.t.Logf("presenced %s (%s): its warnings and errors\n%s", command, p.HTTPAddr, warnings(logs.String(), 60))
			if dir := os.Getenv("PRESENCE_TEST_LOG_DIR"); dir != "" {
				_ = os.WriteFile(filepath.Join(dir, command+"-"+p.HTTPAddr+".log"), []byte(logs.String()), 0o644)
			}
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + p.HTTPAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.done:
			p.t.Fatalf("presenced %s exited before it was ready: %v\n%s", command, p.exitErr, p.logs)
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("presenced %s not ready after 60s\n%s", command, p.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.t.Fatalf("presenced did not stop within 60s after SIGTERM\n%s", p.logs)
	}
	if p.exitErr != nil {
		p.t.Fatalf("presenced exited with %v\n%s", p.exitErr, p.logs)
	}
}

// kill ends the process at once (SIGKILL), if it still runs.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// status asks the API whether clientID is online.
func (p *proc) status(clientID string) presence.Status {
	p.t.Helper()
	var s presence.Status
	code := p.getJSON("/clients/"+url.PathEscape(clientID)+"/online", &s)
	if code != http.StatusOK {
		p.t.Fatalf("GET online for %q: status %d", clientID, code)
	}
	return s
}

// getJSON GETs path and decodes the body into v; it returns the status code.
func (p *proc) getJSON(path string, v any) int {
	p.t.Helper()
	resp, err := http.Get("http://" + p.HTTPAddr + path)
	if err != nil {
		p.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			p.t.Fatalf("GET %s: decode %q: %v", path, body, err)
		}
	}
	return resp.StatusCode
}

// waitOnline polls the API until clientID's online flag is want and returns
// how long that took.
func (p *proc) waitOnline(clientID string, want bool, timeout time.Duration) time.Duration {
	p.t.Helper()
	start := time.Now()
	for {
		if p.status(clientID).Online == want {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			p.t.Fatalf("client %q not online=%v after %v\n%s", clientID, want, timeout, p.logs)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (p *proc) String() string {
	return fmt.Sprintf("presenced mqtt=%s http=%s", p.MQTTAddr, p.HTTPAddr)
}
