package test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Fault injection for the durability tests: PostgreSQL processes found
// through their postmaster.pid, frozen and thawed; presenced stopped with
// a bound; a small filesystem filled to the brim.

// httpClient bounds every request of these tests: a frozen database must
// not hang the test in a readiness probe.
var httpClient = &http.Client{Timeout: 5 * time.Second}

// getJSONErr GETs path on addr and decodes a 200 body into v.
func getJSONErr(addr, path string, v any) (int, error) {
	resp, err := httpClient.Get("http://" + addr + path)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode == http.StatusOK && v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %q: %w", body, err)
		}
	}
	return resp.StatusCode, nil
}

// readiness is one answer of /readyz.
type readiness struct {
	code        int
	contentType string
	body        string
}

func readyz(addr string) (readiness, error) {
	resp, err := httpClient.Get("http://" + addr + "/readyz")
	if err != nil {
		return readiness{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return readiness{code: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: string(body)}, nil
}

// metricValue returns the value of an unlabelled metric in /metrics.
func metricValue(addr, name string) (float64, bool, error) {
	resp, err := httpClient.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil, err
		}
	}
	return 0, false, sc.Err()
}

// postmaster is what a cluster's postmaster.pid says.
type postmaster struct {
	pid       int
	port      string
	socketDir string
}

// readPostmaster reads pgDir/postmaster.pid (the cluster directory, the
// one holding PG_VERSION).
func readPostmaster(pgDir string) (postmaster, error) {
	text, err := os.ReadFile(filepath.Join(pgDir, "postmaster.pid"))
	if err != nil {
		return postmaster{}, err
	}
	lines := strings.Split(string(text), "\n")
	if len(lines) < 5 {
		return postmaster{}, fmt.Errorf("postmaster.pid in %s is short: %q", pgDir, text)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil || pid <= 0 {
		return postmaster{}, fmt.Errorf("postmaster.pid in %s: bad pid %q", pgDir, lines[0])
	}
	return postmaster{pid: pid, port: strings.TrimSpace(lines[3]), socketDir: strings.TrimSpace(lines[4])}, nil
}

// servePGDir is the cluster directory of the private PostgreSQL of
// "presenced serve" on dataDir.
func servePGDir(dataDir string) string { return filepath.Join(dataDir, "postgres", "pg") }

// privateDBURL returns a function giving the URL of the private
// PostgreSQL of serve on dataDir, over its unix socket (trusted), read from
// postmaster.pid at each call.
func privateDBURL(dataDir string) func() (string, error) {
	return func() (string, error) {
		pm, err := readPostmaster(servePGDir(dataDir))
		if err != nil {
			return "", err
		}
		q := url.Values{"host": {pm.socketDir}, "port": {pm.port}, "sslmode": {"disable"}}
		return (&url.URL{Scheme: "postgres", User: url.User("postgres"), Path: "/presenced", RawQuery: q.Encode()}).String(), nil
	}
}

// isPostmasterOf reports whether pid runs postgres on pgDir (and is not a
// pid reused by another program).
func isPostmasterOf(pid int, pgDir string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(string(cmdline), "\x00")
	return strings.Contains(args[0], "postgres") && slices.Contains(args, pgDir)
}

// livePostmaster returns the pid of the postmaster running on pgDir.
func livePostmaster(t *testing.T, pgDir string) int {
	t.Helper()
	pm, err := readPostmaster(pgDir)
	if err != nil {
		t.Fatalf("find the postmaster: %v", err)
	}
	if !isPostmasterOf(pm.pid, pgDir) {
		t.Fatalf("pid %d of %s/postmaster.pid is not a postmaster on it", pm.pid, pgDir)
	}
	return pm.pid
}

// childPIDs returns the processes whose parent is ppid.
func childPIDs(ppid int) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(ppid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// freezeServer stops (SIGSTOP) the whole PostgreSQL server on pgDir: the
// postmaster first, so that it forks no more, then every backend and
// auxiliary process — stopping the postmaster alone would leave the
// connections already open working. thaw (also run at cleanup) continues
// them all.
func freezeServer(t *testing.T, pgDir string) (thaw func()) {
	t.Helper()
	pid := livePostmaster(t, pgDir)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP postmaster %d: %v", pid, err)
	}
	pids := []int{pid}
	for _, child := range childPIDs(pid) {
		if syscall.Kill(child, syscall.SIGSTOP) == nil {
			pids = append(pids, child)
		}
	}
	var once sync.Once
	thaw = func() {
		once.Do(func() {
			for _, p := range pids {
				_ = syscall.Kill(p, syscall.SIGCONT)
			}
		})
	}
	t.Cleanup(thaw)
	t.Logf("froze PostgreSQL on %s: postmaster %d and %d other processes", pgDir, pid, len(pids)-1)
	return thaw
}

// stopWithin sends SIGTERM and waits up to bound for the process to exit;
// it returns how long that took and the exit error (nil: status 0).
func (p *proc) stopWithin(bound time.Duration) (time.Duration, error) {
	p.t.Helper()
	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return time.Since(start), p.exitErr
	case <-time.After(bound):
		p.t.Fatalf("presenced did not exit within %v of SIGTERM\n%s", bound, tail(p.logs.String(), 80))
		return 0, nil
	}
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stopAtCleanup makes sure that, when the test ends, presenced is stopped
// gracefully (so that it stops its private PostgreSQL) and that no
// PostgreSQL server is left running on pgDir (a killed presenced leaves
// one). pgDir may be empty (external database).
func stopAtCleanup(p *proc, pgDir string) {
	p.t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(60 * time.Second):
				p.t.Errorf("presenced did not stop within 60s at cleanup; killing it")
				p.kill()
			}
		}
		if pgDir != "" {
			stopOrphanServer(p.t, pgDir)
		}
	})
}

// stopOrphanServer stops a PostgreSQL server left running on pgDir.
func stopOrphanServer(t *testing.T, pgDir string) {
	pm, err := readPostmaster(pgDir)
	if err != nil || !isPostmasterOf(pm.pid, pgDir) {
		return
	}
	t.Logf("stopping the PostgreSQL server (pid %d) left running on %s", pm.pid, pgDir)
	for _, sig := range []syscall.Signal{syscall.SIGCONT, syscall.SIGQUIT} {
		_ = syscall.Kill(pm.pid, sig)
	}
	deadline := time.Now().Add(10 * time.Second)
	for isPostmasterOf(pm.pid, pgDir) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if isPostmasterOf(pm.pid, pgDir) {
		for _, child := range childPIDs(pm.pid) {
			_ = syscall.Kill(child, syscall.SIGKILL)
		}
		_ = syscall.Kill(pm.pid, syscall.SIGKILL)
	}
}

// mountTmpfs mounts a tmpfs of sizeMB on a new directory and unmounts it at
// cleanup. Register it before starting anything that writes there: cleanups
// run in reverse, so the processes are gone when it is unmounted.
func mountTmpfs(t *testing.T, sizeMB int) (string, error) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", err
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm,mode=0755", sizeMB), "tmpfs", dir).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			out, err := exec.Command("umount", dir).CombinedOutput()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("umount %s: %v: %s; detaching it", dir, err, out)
				_ = exec.Command("umount", "-l", dir).Run()
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	return dir, nil
}

// fillDisk writes path until the filesystem is full (ENOSPC), down to the
// last block, and returns how much it wrote.
func fillDisk(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var written int64
	chunk := make([]byte, 1<<20)
	for size := len(chunk); size >= 512; {
		n, err := f.Write(chunk[:size])
		written += int64(n)
		switch {
		case err == nil:
		case errors.Is(err, syscall.ENOSPC):
			size /= 2 // the brim: ever smaller writes until none fits
		default:
			return written, err
		}
	}
	return written, nil
}

// freeMB returns the free space on the filesystem of path, in MiB.
func freeMB(path string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return -1
	}
	return int64(st.Bavail) * int64(st.Bsize) >> 20
}

// readUntilClosed reads conn until the peer closes it; it fails if that
// takes longer than timeout.
func readUntilClosed(conn net.Conn, timeout time.Duration) error {
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 64)
	for {
		if _, err := conn.Read(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return err
			}
			return nil
		}
	}
}
