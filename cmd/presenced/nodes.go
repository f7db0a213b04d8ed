package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/presenced/presenced/consumer"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore"
)

// nodeGeneration increments and returns the start counter of this node,
// kept in the data directory, so the consumer can tell which of two epochs
// of the node is newer even when their reports arrive out of order. It
// returns 0 (order by arrival instead) when the directory is not writable.
func nodeGeneration(dataDir string, log *slog.Logger) uint64 {
	path := filepath.Join(dataDir, "node-generation")
	var gen uint64
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		gen, err = strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
		if err != nil {
			log.Warn("node generation file is corrupt; starting over", "path", path, "err", err)
			gen = 0
		}
	case !errors.Is(err, fs.ErrNotExist):
		log.Warn("cannot read node generation; epochs will be ordered by arrival", "path", path, "err", err)
		return 0
	}
	gen++
	if err := writeFileSync(path, []byte(strconv.FormatUint(gen, 10)+"\n")); err != nil {
		log.Warn("cannot persist node generation; epochs will be ordered by arrival", "path", path, "err", err)
		return 0
	}
	return gen
}

// writeFileSync replaces path atomically and durably.
func writeFileSync(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// leaseMonitor closes the channels of broker nodes that stopped
// heartbeating. skipNode, when set, is the node this process hosts itself:
// it is alive by construction, and its heartbeats may merely wait behind a
// backlog of events while the database was away.
func leaseMonitor(store *pgstore.Store, cfg config, skipNode string, log *slog.Logger) *consumer.LeaseMonitor {
	return &consumer.LeaseMonitor{
		Every: cfg.LeaseCheckEvery,
		Expire: func(ctx context.Context) ([]presence.StoredEvent, error) {
			closed, err := store.ExpireNodes(ctx, cfg.NodeGrace, skipNode)
			if err != nil {
				return nil, err
			}
			released, err := store.ReleaseTakeovers(ctx, pgstore.MaxTakeoverHold)
			if len(released) > 0 {
				log.Warn("applied takeover closes whose successor never arrived", "events", len(released), "held_for", pgstore.MaxTakeoverHold)
			}
			return append(closed, released...), err
		},
		Log: log.With("component", "leases"),
	}
}

// validateNodeTimes checks the lease settings against each other.
func validateNodeTimes(c config) error {
	var errs []error
	if c.NodeLease < time.Second {
		errs = append(errs, fmt.Errorf("--node-lease must be at least 1s, not %v", c.NodeLease))
	}
	if c.HeartbeatEvery <= 0 || c.HeartbeatEvery > c.NodeLease/2 {
		errs = append(errs, fmt.Errorf("--heartbeat-every must be positive and at most half of --node-lease (%v), not %v", c.NodeLease, c.HeartbeatEvery))
	}
	if c.NodeGrace < 0 {
		errs = append(errs, fmt.Errorf("--node-grace must not be negative, not %v", c.NodeGrace))
	}
	if c.ReconcileEvery < 0 {
		errs = append(errs, fmt.Errorf("--reconcile-every must not be negative (0 turns reconciliation off), not %v", c.ReconcileEvery))
	}
	if c.LeaseCheckEvery <= 0 {
		errs = append(errs, fmt.Errorf("--lease-check-every must be positive, not %v", c.LeaseCheckEvery))
	}
	return errors.Join(errs...)
}
