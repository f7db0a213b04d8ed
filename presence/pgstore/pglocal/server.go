package pglocal

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// One run of the postgres process: how it is started, watched and logged.

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
