package pglocal

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/presenced/presenced/presence"
)

// SuperviseOptions configure Supervise. The zero value gives the defaults.
type SuperviseOptions struct {
	// MaxAttempts is how many restart attempts in a row may fail before
	// Supervise gives up. 0 means 10.
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the wait before each restart attempt
	// (doubling from one to the other). 0 means 100 ms and 10 s.
	MinBackoff, MaxBackoff time.Duration
	// MinFreeBytes: when an attempt fails while the data directory's
	// filesystem has less free space than this, the attempt is not counted
	// and Supervise waits for space instead. 0 means 64 MiB.
	MinFreeBytes uint64
}

func (o *SuperviseOptions) setDefaults() {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 10 * time.Second
	}
	if o.MinFreeBytes == 0 {
		o.MinFreeBytes = 64 << 20
	}
}

// Supervision timings: how often a full disk is re-checked and how often the
// wait for it is logged; and how long a restarted server must run before a
// new exit starts the backoff from the beginning again (so a server that
// crashes right after each start is restarted ever more slowly, not at once).
const (
	diskPollInterval = time.Second
	diskLogInterval  = 30 * time.Second
	stableRun        = time.Minute
)

// Health is a snapshot of the server's state, for readiness and metrics.
type Health struct {
	// Running is true while the server is up and accepting connections, as
	// far as pglocal knows: it started and has not exited since.
	Running bool
	// Restarts counts the restarts Supervise did.
	Restarts int
	// FailedAttempts counts the restart attempts that failed in a row since
	// the server last exited (attempts made while the disk is full are not
	// counted).
	FailedAttempts int
	// Reason says why the server is not running, in words fit for a client
	// (no secret, no log lines); empty when Running.
	Reason string
}

// Health returns the server's state now.
func (c *Cluster) Health() Health {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := Health{Restarts: c.restarts, FailedAttempts: c.failed}
	switch {
	case c.stopping:
		h.Reason = "private PostgreSQL stopped"
	case c.reason != "":
		h.Reason = c.reason
	case c.srv.exited(): // not supervised, or Supervise has not seen it yet
		h.Reason = fmt.Sprintf("private PostgreSQL exited (%v)", c.srv.err)
	default:
		h.Running = true
	}
	return h
}

func (c *Cluster) setState(reason string, failed int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reason, c.failed = reason, failed
}

// Supervise watches the server and restarts it whenever it exits without
// Stop having been called: on the same port and socket directory, so URL
// and LoopbackURL stay valid (PostgreSQL recovers from the crash as it
// starts). Attempts back off from opts.MinBackoff to opts.MaxBackoff. After
// opts.MaxAttempts failed attempts in a row it returns an error with the
// server's last log lines, for the caller to exit with; attempts that fail
// while the disk is full are not counted: Supervise waits for space.
//
// Supervise blocks; it returns nil when ctx ends or Stop is called (if ctx
// ends during a restart, the half-started server is stopped). Call it once.
func (c *Cluster) Supervise(ctx context.Context, opts SuperviseOptions) error {
	opts.setDefaults()
	c.mu.Lock()
	if c.supervised {
		c.mu.Unlock()
		return errors.New("supervise local PostgreSQL: already supervised")
	}
	c.supervised = true
	c.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.stopped, cancel)()

	backoff := presence.Backoff{Min: opts.MinBackoff, Max: opts.MaxBackoff}
	for {
		srv := c.current()
		select {
		case <-srv.done:
		case <-ctx.Done():
			return nil
		}
		if c.ending(ctx) { // Stop marks the end before it stops the server
			return nil
		}
		killServerProcesses(c.pgDir)
		if time.Since(srv.started) >= stableRun {
			backoff.Reset()
		}
		exit := fmt.Sprintf("private PostgreSQL exited (%v)", srv.err)
		c.log.Error("local PostgreSQL exited unexpectedly; restarting it", "err", srv.err,
			"log", c.logTail(srv.logStart), "log_file", c.logPath)
		c.setState(exit+"; restarting", 0)
		began := time.Now()
		if err := c.restart(ctx, opts, &backoff, exit); err != nil {
			if c.ending(ctx) {
				return nil
			}
			return err
		}
		c.mu.Lock()
		c.restarts++
		c.reason, c.failed = "", 0
		restarts := c.restarts
		c.mu.Unlock()
		c.log.Info("local PostgreSQL restarted", "port", c.port, "restarts", restarts,
			"took", time.Since(began).Round(time.Millisecond))
	}
}

// ending reports whether Supervise must return: ctx ended or Stop was
// called. c.stopped is checked itself because the AfterFunc that cancels
// ctx runs in a goroutine of its own, possibly later.
func (c *Cluster) ending(ctx context.Context) bool {
	return ctx.Err() != nil || c.stopped.Err() != nil
}

// restart tries to start the server again until it accepts connections,
// the attempts run out, or ctx ends. exit describes how the server ended,
// for Health and the final error.
func (c *Cluster) restart(ctx context.Context, opts SuperviseOptions, backoff *presence.Backoff, exit string) error {
	failed := 0
	var diskLogged time.Time
	for {
		if err := backoff.Wait(ctx); err != nil {
			return err
		}
		err := c.startAgain(ctx)
		if err == nil {
			return nil
		}
		if c.ending(ctx) {
			return err
		}
		if _, free, statErr := diskSpace(c.pgDir); statErr == nil && free < opts.MinFreeBytes {
			// The server cannot start on a full disk, and no number of
			// attempts changes that: wait for space, without counting.
			c.setState(c.diskReason(free, opts.MinFreeBytes), failed)
			if time.Since(diskLogged) >= diskLogInterval {
				diskLogged = time.Now()
				c.log.Warn("local PostgreSQL cannot restart: waiting for disk space", "dir", c.pgDir,
					"free_mb", free>>20, "need_mb", opts.MinFreeBytes>>20, "err", err)
			}
			if err := c.waitForSpace(ctx, opts.MinFreeBytes, failed); err != nil {
				return err
			}
			c.log.Info("disk space is back; restarting local PostgreSQL", "dir", c.pgDir)
			backoff.Reset()
			continue
		}
		failed++
		c.log.Warn("local PostgreSQL restart attempt failed", "attempt", failed, "max_attempts", opts.MaxAttempts, "err", err)
		if failed >= opts.MaxAttempts {
			c.setState(fmt.Sprintf("%s and could not be restarted (%d attempts failed)", exit, failed), failed)
			return fmt.Errorf("restart local PostgreSQL: %s; gave up after %d failed attempts; last attempt: %w", exit, failed, err)
		}
		c.setState(fmt.Sprintf("%s; restarting, attempt %d of %d", exit, failed+1, opts.MaxAttempts), failed)
	}
}

// startAgain starts a server on the cluster's port and waits until it
// accepts connections. setup is not run again: the database and the
// loopback password are in the catalog, which crash recovery restores.
func (c *Cluster) startAgain(ctx context.Context) error {
	c.removeStaleSockets()
	srv, err := c.spawn()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := c.waitReady(ctx, srv); err != nil {
		killServerProcesses(c.pgDir)
		return err
	}
	return nil
}

// waitForSpace polls the data directory's filesystem until it has need
// bytes free, keeping Health's reason current.
func (c *Cluster) waitForSpace(ctx context.Context, need uint64, failed int) error {
	t := time.NewTicker(diskPollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		_, free, err := diskSpace(c.pgDir)
		if err != nil || free >= need {
			return nil // an unreadable filesystem is for the next attempt to report
		}
		c.setState(c.diskReason(free, need), failed)
	}
}

func (c *Cluster) diskReason(free, need uint64) string {
	return fmt.Sprintf("waiting for disk space: %d MiB free in %s, need %d MiB", free>>20, c.dataDir, need>>20)
}

// killServerProcesses kills what is left of a server on pgDir whose
// postmaster is gone. Its children (backends, checkpointer, …) exit by
// themselves only when they notice, a backend busy with a query much later,
// and until then they hold the shared memory that makes a new postmaster
// refuse to start. When a child crashes PostgreSQL kills the others itself;
// with the postmaster dead nobody would. They cannot be found by process
// group (each child calls setsid), so they are found by name and working
// directory.
func killServerProcesses(pgDir string) {
	for _, pid := range serverProcesses(pgDir) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
