package pglocal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The cluster's directory: its lock, its first initialization, the files
// presenced writes into it, and a server a killed presenced left behind.

// lockDataDir takes an exclusive flock on DataDir/pglocal.lock for the life
// of the Cluster (the kernel drops it when this process dies, however it
// dies), so two processes never run a cluster on one directory.
func (c *Cluster) lockDataDir() error {
	f, err := os.OpenFile(filepath.Join(c.dataDir, "pglocal.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return errors.New("the data directory is in use by another running presenced (pglocal.lock is held)")
		}
		return fmt.Errorf("lock data directory: %w", err)
	}
	_ = f.Truncate(0)
	_, _ = fmt.Fprintf(f, "%d\n", os.Getpid())
	c.lock = f
	return nil
}

// initdb creates the cluster in a scratch directory and renames it into
// place, so a start interrupted during initdb leaves no half-made cluster.
func (c *Cluster) initdb(ctx context.Context, ephemeral bool) error {
	scratch := c.pgDir + ".initdb"
	if err := os.RemoveAll(scratch); err != nil {
		return err
	}
	if err := os.Mkdir(scratch, 0o700); err != nil {
		return err
	}
	if err := c.user.own(scratch); err != nil {
		return err
	}
	args := []string{"-D", scratch, "-U", superuser, "-E", "UTF8", "--no-locale", "--auth=trust"}
	if ephemeral {
		args = append(args, "--no-sync")
	}
	c.log.Info("initializing local PostgreSQL cluster", "dir", c.pgDir, "version", c.bin.version, "user", c.user.name)
	cmd := c.command(ctx, c.bin.initdb(), args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w: %s", err, lastLines(string(out), 10))
	}
	if err := os.Rename(scratch, c.pgDir); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	return nil
}

// writeHBA (re)writes pg_hba.conf at every start: the unix socket is trusted
// (its directory is private), TCP on loopback needs the per-start password.
func (c *Cluster) writeHBA() error {
	const hba = `# Written by presenced (pglocal) at every start; edits are overwritten.
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 trust
host    all       all   127.0.0.1/32  scram-sha-256
`
	path := filepath.Join(c.pgDir, "pg_hba.conf")
	if err := os.WriteFile(path, []byte(hba), 0o600); err != nil {
		return err
	}
	if c.user.drop {
		return os.Chown(path, int(c.user.uid), int(c.user.gid))
	}
	return nil
}

// stopOrphan stops a server left running on the data directory by a
// previous presenced that died without stopping it (see the package doc).
func (c *Cluster) stopOrphan(ctx context.Context) error {
	pidFile := filepath.Join(c.pgDir, "postmaster.pid")
	text, err := os.ReadFile(pidFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(text), "\n", 2)[0]))
	if pid <= 0 || !alive(pid) {
		return nil // PostgreSQL removes a stale pid file itself
	}
	if !isPostmasterOf(pid, c.pgDir) {
		c.log.Info("removing stale postmaster.pid (its pid now belongs to another process)", "pid", pid)
		return os.Remove(pidFile)
	}
	c.log.Warn("a PostgreSQL server from a previous run is still running on the data directory; stopping it", "pid", pid)
	steps := []struct {
		signal syscall.Signal
		wait   time.Duration
	}{{syscall.SIGINT, 60 * time.Second}, {syscall.SIGQUIT, 10 * time.Second}, {syscall.SIGKILL, 10 * time.Second}}
	for _, step := range steps {
		if err := syscall.Kill(pid, step.signal); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("stop the PostgreSQL server (pid %d) left running on the data directory: %w", pid, err)
		}
		deadline := time.Now().Add(step.wait)
		for alive(pid) && time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return fmt.Errorf("stop the PostgreSQL server (pid %d) left running on the data directory: %w", pid, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
		if !alive(pid) {
			return nil
		}
	}
	return fmt.Errorf("the PostgreSQL server (pid %d) left running on the data directory does not stop", pid)
}

// maxSocketPath is the longest unix socket path Linux accepts (sun_path
// holds 108 bytes including the terminating NUL).
const maxSocketPath = 107

// prepareSocketDir chooses the socket directory: DataDir/run, or a short
// private directory under /tmp when DataDir/run/.s.PGSQL.NNNNN would be too
// long. Old socket and lock files are removed: we hold pglocal.lock and no
// server runs on this cluster, so they are stale.
func (c *Cluster) prepareSocketDir() error {
	c.socketDir = filepath.Join(c.dataDir, "run")
	if len(c.socketDir)+len("/.s.PGSQL.65535") > maxSocketPath {
		dir, err := os.MkdirTemp("/tmp", "presenced-pg-")
		if err != nil {
			return err
		}
		c.socketDir, c.tmpSocket = dir, true
	} else if err := os.MkdirAll(c.socketDir, 0o700); err != nil {
		return err
	}
	c.removeStaleSockets()
	return c.user.own(c.socketDir)
}

// removeStaleSockets removes the socket and its lock file of a server that
// is gone (PostgreSQL would refuse to start while the lock file names a
// live process, which a reused pid can be).
func (c *Cluster) removeStaleSockets() {
	stale, _ := filepath.Glob(filepath.Join(c.socketDir, ".s.PGSQL.*"))
	for _, f := range stale {
		_ = os.Remove(f)
	}
}

// maxLogBytes: at start, a larger postgres.log is rotated to postgres.log.1.
const maxLogBytes = 16 << 20

func (c *Cluster) openLog() error {
	path := filepath.Join(c.dataDir, "postgres.log")
	if info, err := os.Stat(path); err == nil && info.Size() > maxLogBytes {
		_ = os.Rename(path, path+".1")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open server log: %w", err)
	}
	c.logFile, c.logPath = f, path
	return nil
}
