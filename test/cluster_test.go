package test

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/presenced/presenced/presence/pgstore/pglocal"
)

// privateCluster is a PostgreSQL cluster of one test, so that the test can
// restart it without disturbing the others (which share pgtest's cluster).
type privateCluster struct {
	opts    pglocal.Options
	cluster *pglocal.Cluster
}

func startPrivateCluster(t *testing.T) *privateCluster {
	t.Helper()
	_, port, _ := net.SplitHostPort(freeAddr(t))
	n, _ := strconv.Atoi(port)
	c := &privateCluster{opts: pglocal.Options{DataDir: t.TempDir(), Port: n, StopWithParent: true}}
	c.start(t)
	t.Cleanup(func() { c.stop(t) })
	return c
}

// URL stays the same across restarts (same socket directory and port).
func (c *privateCluster) URL() string { return c.cluster.URL() }

func (c *privateCluster) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cluster, err := pglocal.Start(ctx, c.opts)
	if err != nil {
		t.Fatalf("start private PostgreSQL: %v", err)
	}
	c.cluster = cluster
}

func (c *privateCluster) stop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.cluster.Stop(ctx); err != nil {
		t.Errorf("stop private PostgreSQL: %v", err)
	}
}

// restart stops the server (fast shutdown: connections are cut) and starts
// it again on the same data and port.
func (c *privateCluster) restart(t *testing.T) {
	t.Helper()
	c.stop(t)
	c.start(t)
}
