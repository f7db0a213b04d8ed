package pglocal

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func startCluster(t *testing.T, opts Options) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	return c
}

func exec1(t *testing.T, url, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

func count(t *testing.T, url, sql string) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, sql).Scan(&n); err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	return n
}

func TestStartRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, Options{DataDir: dir})
	exec1(t, c.URL(), "CREATE TABLE kept (x int); INSERT INTO kept VALUES (1), (2)")
	// The loopback URL works too, with this start's password.
	if n := count(t, c.LoopbackURL(), "SELECT count(*) FROM kept"); n != 2 {
		t.Fatalf("over loopback: %d rows, want 2", n)
	}
	if err := c.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}

	c2 := startCluster(t, Options{DataDir: dir})
	if n := count(t, c2.URL(), "SELECT count(*) FROM kept"); n != 2 {
		t.Fatalf("after restart: %d rows, want 2", n)
	}
	if n := count(t, c2.URL(), "SELECT count(*) FROM pg_settings WHERE name = 'fsync' AND setting = 'on'"); n != 1 {
		t.Fatal("fsync is not on for a durable cluster")
	}
	if _, err := os.Stat(filepath.Join(dir, "postgres.log")); err != nil {
		t.Fatalf("no server log: %v", err)
	}
}

func TestSecondStartOnSameDirRefused(t *testing.T) {
	dir := t.TempDir()
	startCluster(t, Options{DataDir: dir, Ephemeral: true})
	_, err := Start(context.Background(), Options{DataDir: dir, Ephemeral: true})
	if err == nil || !strings.Contains(err.Error(), "in use by another running presenced") {
		t.Fatalf("second Start on the same data dir: %v, want 'in use' error", err)
	}
}

// A presenced killed with SIGKILL leaves its server running and releases
// pglocal.lock (the kernel drops the flock). The next Start stops the orphan
// and starts its own server on the same data.
func TestOrphanedServerIsStoppedAndDataKept(t *testing.T) {
	dir := t.TempDir()
	orphan, err := Start(context.Background(), Options{DataDir: dir})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	exec1(t, orphan.URL(), "CREATE TABLE kept (x int); INSERT INTO kept VALUES (1)")
	orphan.lock.Close() // what the kernel does when the owner dies

	c := startCluster(t, Options{DataDir: dir})
	select {
	case <-orphan.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the orphaned server is still running")
	}
	if n := count(t, c.URL(), "SELECT count(*) FROM kept"); n != 1 {
		t.Fatalf("after taking over: %d rows, want 1", n)
	}
}

func TestStalePidFileOfAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, Options{DataDir: dir, Ephemeral: true})
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A pid file naming a live process that is not postgres (this test).
	pidFile := filepath.Join(dir, "pg", "postmaster.pid")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"+filepath.Join(dir, "pg")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	startCluster(t, Options{DataDir: dir, Ephemeral: true})
}

func TestNoServerBinaries(t *testing.T) {
	_, err := Start(context.Background(), Options{DataDir: t.TempDir(), BinDir: t.TempDir()})
	if !errors.Is(err, ErrNoServer) {
		t.Fatalf("Start without binaries: %v, want ErrNoServer", err)
	}
	if !strings.Contains(err.Error(), "apt-get install postgresql") || !strings.Contains(err.Error(), "PRESENCE_DATABASE_URL") {
		t.Fatalf("error does not say what to install or set: %v", err)
	}
}

func TestLongDataDirUsesShortSocketDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 60), strings.Repeat("e", 40))
	c := startCluster(t, Options{DataDir: dir, Ephemeral: true})
	if !c.tmpSocket {
		t.Fatalf("socket dir %s for a long data dir", c.socketDir)
	}
	exec1(t, c.URL(), "SELECT 1")
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.socketDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary socket dir not removed: %v", err)
	}
}
