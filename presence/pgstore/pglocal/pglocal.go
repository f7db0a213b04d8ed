// Package pglocal runs a private PostgreSQL cluster for presenced from the
// server binaries installed on the machine: the embedded default of
// `presenced` when no database URL is given, and the database of every test
// package (through pgtest).
//
// Layout under Options.DataDir:
//
//	pg/            the cluster (initdb on first start, reused afterwards)
//	run/           the unix socket directory (a short /tmp directory instead
//	               when DataDir is too deep for a socket path)
//	postgres.log   the server log (rotated to postgres.log.1 at start when large)
//	pglocal.lock   held (flock) while a Cluster runs on this directory
//
// A presenced that was killed (SIGKILL) leaves its server running, or a stale
// postmaster.pid. Start takes pglocal.lock first, so a server still running
// on the data directory cannot belong to a live presenced: it is an orphan.
// Start stops it with a fast shutdown (SIGINT; SIGQUIT after a grace
// period) and starts its own, with this run's settings and a process it
// owns. A postmaster.pid whose process is gone is left to PostgreSQL, which
// removes it; one whose pid now belongs to another program is removed.
//
// A server that dies while presenced runs (SIGKILL, a PANIC it cannot
// recover from) is restarted by Cluster.Supervise on the same port and
// socket directory, so URL and LoopbackURL stay valid; PostgreSQL does its
// crash recovery at that start. Supervise gives up, with the reason, after
// a run of failed attempts, except while the disk is full: that is waited
// out. Cluster.Health tells readiness and metrics how it stands.
//
// The WAL is sized for the volume the cluster is on (see walSizes), so a
// small volume is not filled by PostgreSQL's 1 GB default.
package pglocal

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Database is the name of the database Start creates for presenced.
const Database = "presenced"

// superuser is the cluster's superuser role (initdb -U).
const superuser = "postgres"

// Options configure a local cluster.
type Options struct {
	// DataDir holds the cluster and its log; created if missing. Required.
	DataDir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one at each start.
	// It also names the unix socket.
	Port int
	// Logger receives pglocal's own messages (the server logs to
	// DataDir/postgres.log). Nil means slog.Default().
	Logger *slog.Logger

	// BinDir, when set, is the only directory searched for postgres and
	// initdb.
	BinDir string
	// Ephemeral trades durability for speed (fsync, synchronous_commit and
	// full_page_writes off, initdb without sync): for tests only. Data of an
	// ephemeral cluster may be lost in a crash of the machine.
	Ephemeral bool
	// StopWithParent asks the kernel to fast-shut the server down when this
	// process dies, even by SIGKILL (Linux only). Tests use it so that a
	// killed test binary leaves no server behind.
	StopWithParent bool
}

// Cluster is a running local PostgreSQL server owned by this process.
type Cluster struct {
	// Set by Start and not changed afterwards: a restart reuses them.
	log       *slog.Logger
	opts      Options
	dataDir   string
	pgDir     string
	socketDir string
	tmpSocket bool // socketDir is a temporary directory to remove at Stop
	port      int
	password  string // in the catalog, so it survives a crash and restart
	wal       walSize
	bin       binaries
	user      runAs
	lock      *os.File
	logFile   *os.File
	logPath   string

	// stopped ends when Stop is called: it interrupts Supervise wherever it is.
	stopped    context.Context
	cancelStop context.CancelFunc

	mu         sync.Mutex
	srv        *server // the current server process, or the last one
	stopping   bool    // Stop was called: no process may be started any more
	supervised bool    // Supervise was called: it reports exits, not Stop
	restarts   int     // restarts Supervise did
	failed     int     // consecutive failed restart attempts (disk waits not counted)
	reason     string  // why not running, set by Supervise while it restarts

	stopOnce sync.Once
	stopErr  error
}

// server is one run of the postgres process.
type server struct {
	proc     *os.Process
	started  time.Time
	logStart int64         // size of postgres.log when it started: its own lines follow
	done     chan struct{} // closed when the process has exited
	err      error         // how it exited; set before done is closed
}

func (s *server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// startTimeout bounds how long Start waits for the server to accept
// connections when ctx has no deadline (crash recovery may take a while).
const startTimeout = 2 * time.Minute

// Start starts the cluster in opts.DataDir, initializing it on first use,
// and creates the presenced database if missing. When this process is root
// the server runs as the "postgres" user (or "nobody").
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	if opts.DataDir == "" {
		return nil, errors.New("start local PostgreSQL: no data directory given")
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("start local PostgreSQL: %w", err)
	}
	c := &Cluster{
		log:     opts.Logger,
		opts:    opts,
		dataDir: dataDir,
		pgDir:   filepath.Join(dataDir, "pg"),
	}
	c.stopped, c.cancelStop = context.WithCancel(context.Background())
	if c.log == nil {
		c.log = slog.Default()
	}
	c.log = c.log.With("component", "pglocal")
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout)
		defer cancel()
	}
	defer func() {
		if err != nil {
			c.release()
			err = fmt.Errorf("start local PostgreSQL in %s: %w", dataDir, err)
		}
	}()

	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	if err := c.lockDataDir(); err != nil {
		return nil, err
	}
	major, err := dataDirMajor(c.pgDir)
	if err != nil {
		return nil, err
	}
	if c.bin, err = findBinaries(opts.BinDir, major); err != nil {
		return nil, err
	}
	if c.user, err = chooseUser(); err != nil {
		return nil, err
	}
	if err := c.user.makeTraversable(dataDir, c.log); err != nil {
		return nil, err
	}
	if major == 0 {
		if err := c.initdb(ctx, opts.Ephemeral); err != nil {
			return nil, err
		}
	}
	if err := c.user.own(c.pgDir); err != nil {
		return nil, err
	}
	if err := c.writeHBA(); err != nil {
		return nil, err
	}
	if err := c.stopOrphan(ctx); err != nil {
		return nil, err
	}
	if err := c.prepareSocketDir(); err != nil {
		return nil, err
	}
	if err := c.openLog(); err != nil {
		return nil, err
	}
	volumeBytes, _, err := diskSpace(c.pgDir)
	if err != nil {
		c.log.Warn("cannot size the WAL for the volume; using the smallest sizes", "err", err)
	}
	c.wal = walSizes(volumeBytes)
	if err := c.startServer(ctx); err != nil {
		return nil, err
	}
	if err := c.setup(ctx); err != nil {
		c.shutdown(context.Background(), c.srv)
		return nil, err
	}
	c.log.Info("local PostgreSQL ready", "version", c.bin.version, "data", c.pgDir,
		"socket", c.socketDir, "port", c.port, "user", c.user.name, "log", c.logPath,
		"volume_mb", volumeBytes>>20, "max_wal_size_mb", c.wal.maxMB, "min_wal_size_mb", c.wal.minMB)
	return c, nil
}

// URL is a postgres:// URL for the presenced database over the unix socket.
// It carries no secret (the socket directory is private to the server's user
// and root) and can be logged.
func (c *Cluster) URL() string { return c.socketURL(Database) }

// LoopbackURL is a postgres:// URL for the presenced database over TCP on
// 127.0.0.1, for other processes. It contains a password generated at each
// Start: never log it. A restart by Supervise keeps the password (it is in
// the cluster's catalog, which crash recovery restores), so the URL stays
// valid.
func (c *Cluster) LoopbackURL() string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(superuser, c.password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + Database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// AdminURL is like URL for another database of the cluster (tests create
// one database per test through the "postgres" database).
func (c *Cluster) AdminURL(database string) string { return c.socketURL(database) }

func (c *Cluster) socketURL(database string) string {
	q := url.Values{"host": {c.socketDir}, "port": {strconv.Itoa(c.port)}, "sslmode": {"disable"}}
	u := url.URL{Scheme: "postgres", User: url.User(superuser), Host: "", Path: "/" + database, RawQuery: q.Encode()}
	return u.String()
}

// Done is closed when the current server process exits, expectedly or not.
// After Supervise restarted the server, Done returns the new process's
// channel.
func (c *Cluster) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.srv.done
}

// current returns the current server process.
func (c *Cluster) current() *server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.srv
}

// Stop shuts the server down (fast shutdown: open transactions are rolled
// back, everything committed is on disk) and waits for it to exit. If ctx
// ends first the server is stopped immediately (SIGQUIT; crash recovery at
// the next start) and then killed. Stop may be called more than once, and
// at any moment of a Supervise, which then returns nil. It returns an error
// if the server had exited and no Supervise was there to handle it.
func (c *Cluster) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() {
		c.mu.Lock()
		c.stopping = true // from here on spawn refuses: srv is the last process
		srv, supervised := c.srv, c.supervised
		c.mu.Unlock()
		c.cancelStop() // before the exit below, so Supervise never takes it for a crash
		switch {
		case !srv.exited():
			c.shutdown(ctx, srv)
			c.log.Info("local PostgreSQL stopped")
		case !supervised:
			c.stopErr = fmt.Errorf("stop local PostgreSQL: the server had already exited: %v (see %s)", srv.err, c.logPath)
		}
		killServerProcesses(c.pgDir) // children of a postmaster that was killed
		c.release()
	})
	return c.stopErr
}

// shutdown signals the server and waits for it to exit, escalating when ctx
// ends.
func (c *Cluster) shutdown(ctx context.Context, srv *server) {
	_ = srv.proc.Signal(syscall.SIGINT) // fast shutdown
	select {
	case <-srv.done:
		return
	case <-ctx.Done():
	}
	c.log.Warn("local PostgreSQL did not stop in time; stopping it immediately")
	_ = srv.proc.Signal(syscall.SIGQUIT) // immediate shutdown
	select {
	case <-srv.done:
		return
	case <-time.After(5 * time.Second):
	}
	_ = srv.proc.Kill()
	<-srv.done
}

// release frees what Start acquired besides the server process.
func (c *Cluster) release() {
	c.cancelStop()
	if c.logFile != nil {
		_ = c.logFile.Close()
	}
	if c.tmpSocket {
		_ = os.RemoveAll(c.socketDir)
	}
	if c.lock != nil {
		_ = c.lock.Close() // releases the flock
	}
}

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

// startServer runs postgres and waits until it accepts connections. With a
// port chosen here (opts.Port == 0), a port taken in the meantime is retried
// with another.
func (c *Cluster) startServer(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		c.port = c.opts.Port
		if c.port == 0 {
			port, err := freePort()
			if err != nil {
				return err
			}
			c.port = port
		}
		srv, err := c.spawn()
		if err == nil {
			err = c.waitReady(ctx, srv)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, errPortInUse) || c.opts.Port != 0 || attempt == 3 {
			return err
		}
	}
}

// errStopped: Stop was called, so no server may be started.
var errStopped = errors.New("local PostgreSQL is stopping")

// spawn starts a postgres process on c.port and makes it the current one.
// It holds c.mu throughout, so a Stop either comes first (and spawn
// refuses) or finds the new process to shut down: none can be missed.
func (c *Cluster) spawn() (*server, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return nil, errStopped
	}
	durable := "on"
	if c.opts.Ephemeral {
		durable = "off"
	}
	settings := []string{
		"listen_addresses=127.0.0.1",
		"port=" + strconv.Itoa(c.port),
		"unix_socket_directories=" + c.socketDir,
		"unix_socket_permissions=0700",
		"max_connections=200",
		"shared_buffers=128MB",
		"fsync=" + durable,
		"synchronous_commit=" + durable,
		"full_page_writes=" + durable,
		"logging_collector=off",
		"log_destination=stderr",
		"log_line_prefix=%m [%p] ",
		"password_encryption=scram-sha-256",
	}
	settings = append(settings, c.wal.settings()...)
	args := []string{"-D", c.pgDir}
	for _, s := range settings {
		args = append(args, "-c", s)
	}
	cmd := c.command(context.Background(), c.bin.postgres(), args...) // lives until Stop, not until ctx ends
	cmd.Stdout, cmd.Stderr = c.logFile, c.logFile
	cmd.SysProcAttr = sysProcAttr(c.user.credential(), c.opts.StopWithParent)
	c.log.Debug("starting local PostgreSQL", "bin", c.bin.dir, "port", c.port)
	srv := &server{started: time.Now(), logStart: c.logSize(), done: make(chan struct{})}

	// The kernel ties a parent-death signal to the thread that forked the
	// child, and Go may retire idle threads: with StopWithParent, fork and
	// wait from a goroutine locked to its thread for the server's lifetime.
	started := make(chan error, 1)
	go func() {
		if c.opts.StopWithParent {
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine, after the server
		}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		srv.proc = cmd.Process
		started <- nil
		srv.err = cmd.Wait()
		close(srv.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("run %s: %w", c.bin.postgres(), err)
	}
	c.srv = srv
	return srv, nil
}

var errPortInUse = errors.New("port in use")

// waitReady polls the server over the unix socket until it accepts a
// connection, fails early if the process exits, and reports the end of the
// server log when it does. If ctx ends first it stops the server.
func (c *Cluster) waitReady(ctx context.Context, srv *server) error {
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(attemptCtx, c.socketURL("postgres"))
		cancel()
		if err == nil {
			_ = conn.Close(ctx)
			return nil
		}
		select {
		case <-srv.done:
			tail := c.logTail(srv.logStart)
			if strings.Contains(tail, "Address already in use") {
				return fmt.Errorf("%w: 127.0.0.1:%d: %s", errPortInUse, c.port, tail)
			}
			return fmt.Errorf("postgres exited during start-up (%v); end of %s:\n%s", srv.err, c.logPath, tail)
		case <-ctx.Done():
			c.shutdown(context.Background(), srv)
			return fmt.Errorf("postgres did not accept connections in time (%w); last attempt: %v; end of %s:\n%s",
				ctx.Err(), err, c.logPath, c.logTail(srv.logStart))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// setup sets this start's loopback password and creates the presenced
// database if missing.
func (c *Cluster) setup(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, c.socketURL("postgres"))
	if err != nil {
		return fmt.Errorf("connect to local PostgreSQL: %w", err)
	}
	defer conn.Close(context.Background())
	var secret [18]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return err
	}
	c.password = hex.EncodeToString(secret[:])
	// The password is hex, so it is safe to inline (utility statements take
	// no parameters).
	if _, err := conn.Exec(ctx, "ALTER ROLE "+superuser+" PASSWORD '"+c.password+"'"); err != nil {
		return fmt.Errorf("set loopback password: %w", err)
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", Database).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %s: %w", Database, err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+Database); err != nil {
			return fmt.Errorf("create database %s: %w", Database, err)
		}
	}
	return nil
}

// command prepares a PostgreSQL program to run as the cluster's user, in
// the data directory, with a minimal environment (no inherited PG*
// variables).
func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = c.dataDir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "TZ=UTC"}
	cmd.SysProcAttr = sysProcAttr(c.user.credential(), false)
	return cmd
}

func (c *Cluster) logSize() int64 {
	info, err := os.Stat(c.logPath)
	if err != nil {
		return 0
	}
	return info.Size()
}

// maxTailBytes bounds what logTail reads: the log of a server that ran for
// weeks may be large, and 15 lines are at its end.
const maxTailBytes = 64 << 10

// logTail returns the last lines the server logged since offset.
func (c *Cluster) logTail(offset int64) string {
	f, err := os.Open(c.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil || info.Size() < offset {
		return ""
	}
	offset = max(offset, info.Size()-maxTailBytes)
	text := make([]byte, info.Size()-offset)
	n, _ := f.ReadAt(text, offset)
	return lastLines(string(text[:n]), 15)
}

func lastLines(text string, n int) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
