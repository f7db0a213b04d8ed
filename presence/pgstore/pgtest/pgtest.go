// Package pgtest gives tests a fresh PostgreSQL database each.
//
// With PRESENCE_TEST_DATABASE_URL set, databases are created on that server
// (the URL's user must be allowed to CREATE DATABASE). Otherwise the first
// call starts one local cluster for the whole test binary (pglocal, in a
// temporary directory, ephemeral: no fsync), and every call creates its own
// database in it. Use Main from TestMain to stop the cluster and remove its
// directory when the tests end:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// Without Main the cluster still stops when the test binary exits (the
// kernel signals it), but its temporary directory is left behind.
//
// Works as root: pglocal runs the server as the postgres (or nobody) user.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/presenced/presenced/presence/pgstore"
	"github.com/presenced/presenced/presence/pgstore/pglocal"
)

// EnvURL names the environment variable with the URL of an existing server
// to create test databases on.
const EnvURL = "PRESENCE_TEST_DATABASE_URL"

// The one cluster of this test binary. Package state is the point here:
// starting a cluster costs a second or two, a database a few milliseconds.
var shared struct {
	once    sync.Once
	cluster *pglocal.Cluster
	dir     string
	err     error
}

// Main runs the tests and then stops the shared cluster, if one was
// started, and removes its directory. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// Stop stops the shared cluster and removes its directory; for a TestMain
// that does more than Main.
func Stop() {
	if shared.cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = shared.cluster.Stop(ctx)
	}
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
}

// adminURL returns the URL of a database to issue CREATE DATABASE from,
// and a function that turns a database name into a URL on the same server.
func adminURL(t testing.TB) (admin string, urlFor func(database string) string) {
	t.Helper()
	if env := os.Getenv(EnvURL); env != "" {
		return env, func(database string) string { return withDatabase(t, env, database) }
	}
	shared.once.Do(func() {
		removeAbandoned()
		shared.dir, shared.err = os.MkdirTemp("", "pgtest-")
		if shared.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared.cluster, shared.err = pglocal.Start(ctx, pglocal.Options{
			DataDir:        shared.dir,
			Logger:         slog.New(slog.DiscardHandler),
			Ephemeral:      true,
			StopWithParent: true,
		})
	})
	if shared.err != nil {
		t.Fatalf("pgtest: start local PostgreSQL (or set %s): %v", EnvURL, shared.err)
	}
	return shared.cluster.AdminURL("postgres"), shared.cluster.AdminURL
}

// removeAbandoned deletes the cluster directories of test binaries that
// were killed before Stop ran: old pgtest-* directories whose pglocal.lock
// nobody holds. (Their servers stopped when the binary died.)
func removeAbandoned() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "pgtest-*"))
	for _, dir := range dirs {
		info, err := os.Stat(dir)
		if err != nil || time.Since(info.ModTime()) < 10*time.Minute {
			continue // may be a cluster that is starting
		}
		lock, err := os.OpenFile(filepath.Join(dir, "pglocal.lock"), os.O_RDWR, 0)
		if err != nil {
			continue
		}
		free := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
		_ = lock.Close()
		if free {
			_ = os.RemoveAll(dir)
		}
	}
}

// URL creates an empty database for this test and returns its URL. The
// database is dropped when the test ends.
func URL(t testing.TB) string {
	t.Helper()
	admin, urlFor := adminURL(t)
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	name := "test_" + hex.EncodeToString(suffix[:])

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("pgtest: connect to the test server: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			return // the server is gone; nothing to clean
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("pgtest: drop database %s: %v", name, err)
		}
	})
	return urlFor(name)
}

// NewStore opens a migrated store on a fresh database; it is closed when
// the test ends.
func NewStore(t testing.TB) *pgstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := pgstore.Open(ctx, URL(t))
	if err != nil {
		t.Fatalf("pgtest: open store: %v", err)
	}
	t.Cleanup(store.Close)
	if err := store.Migrate(ctx); err != nil {
		t.Fatalf("pgtest: migrate: %v", err)
	}
	return store
}

// withDatabase returns url with its database replaced, for both URL and
// keyword/value connection strings.
func withDatabase(t testing.TB, connString, database string) string {
	t.Helper()
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		u, err := url.Parse(connString)
		if err != nil {
			t.Fatalf("pgtest: %s is not a valid URL", EnvURL)
		}
		u.Path = "/" + database
		return u.String()
	}
	return fmt.Sprintf("%s dbname=%s", connString, database)
}
