package main

import (
	"fmt"
	"syscall"
)

// durabilityConfig is what keeps accepted events safe: the outbox every
// lifecycle event is written to before the broker acts on it (serve and
// broker modes), the free-space reserve below which new CONNECTs are
// refused, and the supervision of the private PostgreSQL.
type durabilityConfig struct {
	OutboxMaxMB             int
	MinFreeDiskMB           int // 0: automatic (autoDiskReserve)
	PostgresRestartAttempts int
	outbox                  bool // the mode has an outbox (serve, broker)
}

func registerDurabilityFlags(f *envFlags, c *durabilityConfig, mode string) {
	if mode == "serve" || mode == "broker" {
		c.outbox = true
		f.Int(&c.OutboxMaxMB, "outbox-max-mb", 1024, "size bound of the durable outbox of lifecycle events under --data-dir; when full, new CONNECTs are refused with CONNACK 0x03 (disconnect and tcpclean are always written)")
		f.Int(&c.MinFreeDiskMB, "min-free-disk-mb", 0, "free space to keep on the filesystems of the outbox and the private PostgreSQL: below it new CONNECTs are refused with CONNACK 0x03 until space returns (0: 5% of the volume, at least 32 MiB, at most 1 GiB)")
	}
	f.Int(&c.PostgresRestartAttempts, "postgres-restart-attempts", 10, "consecutive failed restarts of the private PostgreSQL before presenced gives up and exits non-zero (waiting for disk space does not count)")
}

func (c durabilityConfig) validate() []error {
	var errs []error
	if c.outbox && c.OutboxMaxMB < 1 {
		errs = append(errs, fmt.Errorf("--outbox-max-mb must be at least 1, not %d", c.OutboxMaxMB))
	}
	if c.MinFreeDiskMB < 0 {
		errs = append(errs, fmt.Errorf("--min-free-disk-mb must be 0 (automatic) or more, not %d", c.MinFreeDiskMB))
	}
	if c.PostgresRestartAttempts < 1 {
		errs = append(errs, fmt.Errorf("--postgres-restart-attempts must be at least 1, not %d", c.PostgresRestartAttempts))
	}
	return errs
}

// diskReserve is the free space to keep on the filesystem of dir, in
// bytes: the flag, or autoDiskReserve of the volume's size.
func (c durabilityConfig) diskReserve(dir string) int64 {
	if c.MinFreeDiskMB > 0 {
		return int64(c.MinFreeDiskMB) << 20
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return autoDiskReserve(0)
	}
	return autoDiskReserve(int64(st.Blocks) * int64(st.Bsize))
}

// autoDiskReserve is 5 % of a volume, within 32 MiB..1 GiB. The reserve is
// what lets a full disk degrade gracefully: CONNECTs are refused from the
// moment free space falls below it, and what is left is for the tcpcleans
// of clients already admitted and for PostgreSQL's WAL and checkpoints, so
// that the database never PANICs for want of space on a volume only
// presenced writes to.
func autoDiskReserve(volumeBytes int64) int64 {
	const lo, hi = 32 << 20, 1 << 30
	return min(max(volumeBytes/20, lo), hi)
}
