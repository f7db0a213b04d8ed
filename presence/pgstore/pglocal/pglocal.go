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
	"path/filepath"
	"strconv"
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
	if c.user.name == "nobody" {
		// Its files are then those of every other daemon running as
		// nobody, and so is its trusted unix socket.
		c.log.Warn("local PostgreSQL runs as user nobody (there is no postgres user): other services running as nobody can reach its data; create a postgres user (the postgresql package does)")
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
