package pglocal

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// supervise runs c.Supervise in the background; its result arrives on the
// returned channel. Cleanup stops the cluster and waits for Supervise.
func supervise(t *testing.T, c *Cluster, opts SuperviseOptions) <-chan error {
	t.Helper()
	result := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		result <- c.Supervise(context.Background(), opts)
	}()
	t.Cleanup(func() {
		_ = c.Stop(context.Background())
		<-finished
	})
	return result
}

// waitFor polls cond until it holds; the deadline only turns a hang into a
// failure.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitResult waits for Supervise to return.
func waitResult(t *testing.T, result <-chan error) error {
	t.Helper()
	select {
	case err := <-result:
		return err
	case <-time.After(90 * time.Second):
		t.Fatal("Supervise did not return")
		return nil
	}
}

func assertSupervising(t *testing.T, result <-chan error) {
	t.Helper()
	select {
	case err := <-result:
		t.Fatalf("Supervise returned: %v", err)
	default:
	}
}

// killPostmaster SIGKILLs the postmaster named by postmaster.pid, as an
// operator or the OOM killer would.
func killPostmaster(t *testing.T, c *Cluster) int {
	t.Helper()
	text, err := os.ReadFile(filepath.Join(c.pgDir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.SplitN(string(text), "\n", 2)[0])
	if err != nil {
		t.Fatalf("postmaster.pid: %v", err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		t.Fatal(err)
	}
	return pid
}

func connects(url string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return false
	}
	_ = conn.Close(ctx)
	return true
}

func assertNoSecret(t *testing.T, c *Cluster, text string) {
	t.Helper()
	if strings.Contains(text, c.password) {
		t.Fatalf("%q contains the loopback password", text)
	}
}

func TestSuperviseRestartsKilledServer(t *testing.T) {
	c := startCluster(t, Options{DataDir: t.TempDir()}) // durable: committed means on disk
	exec1(t, c.URL(), "CREATE TABLE kept (x int); INSERT INTO kept VALUES (1), (2)")
	url, loopback := c.URL(), c.LoopbackURL()
	result := supervise(t, c, SuperviseOptions{})

	// A backend busy with a query outlives its postmaster, holding the
	// shared memory a new server needs: the restart must not wait for it.
	busy := make(chan error, 1)
	conn, err := pgx.Connect(context.Background(), c.URL())
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := conn.Exec(context.Background(), "SELECT count(*) FROM generate_series(1, 10000000000)")
		busy <- err
	}()
	waitFor(t, "the busy backend", func() bool {
		return count(t, c.URL(), "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT count(*) FROM generate_series(1, 10000000000)' AND state = 'active'") == 1
	})

	pid := killPostmaster(t, c)
	killed := time.Now()
	waitFor(t, "the restarted server", func() bool { return c.Health().Restarts == 1 && connects(c.URL()) })
	t.Logf("from SIGKILL to accepting connections: %v", time.Since(killed).Round(time.Millisecond))

	if c.URL() != url || c.LoopbackURL() != loopback {
		t.Fatalf("URLs changed across the restart: %s, %s", c.URL(), url)
	}
	if alive(pid) {
		t.Fatalf("the killed postmaster %d is alive", pid)
	}
	if err := <-busy; err == nil {
		t.Fatal("the query of the killed server's backend succeeded")
	}
	if n := count(t, c.URL(), "SELECT count(*) FROM kept"); n != 2 {
		t.Fatalf("after the restart: %d rows, want 2", n)
	}
	if n := count(t, loopback, "SELECT count(*) FROM kept"); n != 2 {
		t.Fatalf("over loopback after the restart: %d rows, want 2", n)
	}
	if h := c.Health(); h != (Health{Running: true, Restarts: 1}) {
		t.Fatalf("Health = %+v, want running after 1 restart", h)
	}
	assertSupervising(t, result)
}

func TestStopDuringSupervision(t *testing.T) {
	t.Run("running", func(t *testing.T) {
		c := startCluster(t, Options{DataDir: t.TempDir(), Ephemeral: true})
		result := supervise(t, c, SuperviseOptions{})
		pid := c.current().proc.Pid
		if err := c.Stop(context.Background()); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if err := waitResult(t, result); err != nil {
			t.Fatalf("Supervise after Stop: %v", err)
		}
		if alive(pid) {
			t.Fatalf("postmaster %d is alive after Stop", pid)
		}
		waitFor(t, "no server processes", func() bool { return len(serverProcesses(c.pgDir)) == 0 })
		if h := c.Health(); h.Running || h.Reason != "private PostgreSQL stopped" {
			t.Fatalf("Health after Stop = %+v", h)
		}
	})
	t.Run("restarting", func(t *testing.T) {
		c := startCluster(t, Options{DataDir: t.TempDir(), Ephemeral: true})
		result := supervise(t, c, SuperviseOptions{MaxAttempts: 1000, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
		breakConfig(t, c)
		killPostmaster(t, c)
		waitFor(t, "a failed restart attempt", func() bool { return c.Health().FailedAttempts >= 1 })
		if err := c.Stop(context.Background()); err != nil {
			t.Fatalf("Stop while restarting: %v", err)
		}
		if err := waitResult(t, result); err != nil {
			t.Fatalf("Supervise after Stop: %v", err)
		}
		waitFor(t, "no server processes", func() bool { return len(serverProcesses(c.pgDir)) == 0 })
	})
}

// breakConfig makes every later start of the server fail: postgres refuses
// a postgresql.conf it cannot parse.
func breakConfig(t *testing.T, c *Cluster) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(c.pgDir, "postgresql.conf"), []byte("this is = not ' a config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestSuperviseGivesUp(t *testing.T) {
	c := startCluster(t, Options{DataDir: t.TempDir(), Ephemeral: true})
	result := supervise(t, c, SuperviseOptions{MaxAttempts: 2, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	breakConfig(t, c)
	killPostmaster(t, c)

	err := waitResult(t, result)
	if err == nil {
		t.Fatal("Supervise returned nil, want an error")
	}
	for _, want := range []string{"gave up after 2 failed attempts", "signal: killed", "postgresql.conf"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
	h := c.Health()
	if h.Running || h.FailedAttempts != 2 || !strings.Contains(h.Reason, "could not be restarted") {
		t.Fatalf("Health after giving up = %+v", h)
	}
	assertNoSecret(t, c, h.Reason)
	assertNoSecret(t, c, err.Error())
}

// A full disk is waited out: attempts that fail meanwhile are not counted
// (MaxAttempts is 1, so one counted failure would end Supervise), and the
// server comes back once there is space.
func TestSuperviseWaitsOutFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small filesystem needs root")
	}
	mnt := filepath.Join(t.TempDir(), "vol")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=128m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	c := startCluster(t, Options{DataDir: filepath.Join(mnt, "data"), Ephemeral: true})
	var maxWAL string
	if err := queryRow(c.URL(), "SHOW max_wal_size", &maxWAL); err != nil || maxWAL != "48MB" {
		t.Fatalf("max_wal_size on a 128 MB volume = %q (%v), want 48MB", maxWAL, err)
	}
	result := supervise(t, c, SuperviseOptions{MaxAttempts: 1, MinFreeBytes: 16 << 20, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})

	filler := filepath.Join(mnt, "filler")
	fill(t, filler)
	killPostmaster(t, c)
	waitFor(t, "the wait for disk space", func() bool { return strings.HasPrefix(c.Health().Reason, "waiting for disk space") })
	if h := c.Health(); h.Running || h.FailedAttempts != 0 {
		t.Fatalf("Health while the disk is full = %+v", h)
	}
	assertSupervising(t, result)

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the restarted server", func() bool { h := c.Health(); return h.Running && h.Restarts == 1 })
	if !connects(c.URL()) {
		t.Fatal("no connection after the restart")
	}
	assertSupervising(t, result)
}

// fill writes to path until the filesystem is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = io.Copy(f, zeros{})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling %s: %v, want ENOSPC", path, err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func queryRow(url, sql string, dest ...any) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.QueryRow(ctx, sql).Scan(dest...)
}
