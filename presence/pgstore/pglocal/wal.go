package pglocal

import (
	"os"
	"strconv"
	"syscall"
)

// walSize is the WAL disk budget of the cluster, in MB.
type walSize struct {
	maxMB, minMB uint64
}

// walSizes sizes the WAL for a volume of volumeBytes (0 when unknown).
//
// PostgreSQL's defaults (max_wal_size 1 GB, min_wal_size 80 MB) assume a
// server with a disk of its own; presenced's cluster shares a volume that
// may be 512 MB. max_wal_size is the WAL kept between checkpoints (a soft
// limit: a checkpoint starts early enough to hold it), so a tenth of the
// volume, between 48 MB (three 16 MB segments; PostgreSQL needs at least
// two) and PostgreSQL's own 1 GB, bounds the WAL to about a tenth of a small
// volume, and costs only more frequent checkpoints there. min_wal_size is
// the WAL recycled rather than removed after a checkpoint (it saves creating
// segments): a quarter of max_wal_size, at least the two segments PostgreSQL
// requires.
//
// checkpoint_timeout stays at PostgreSQL's 5 minutes: WAL on disk and crash
// recovery time are both bounded by max_wal_size already, and a shorter
// timeout would only add checkpoints (and full-page writes) on a quiet
// server. Nothing may keep WAL beyond max_wal_size: wal_keep_size is 0 and
// max_slot_wal_keep_size caps what a forgotten replication slot can hold
// (the cluster is private; presenced uses no slots).
func walSizes(volumeBytes uint64) walSize {
	const (
		segmentMB = 16
		floorMB   = 3 * segmentMB
		ceilingMB = 1024
	)
	maxMB := min(max(volumeBytes/10>>20, floorMB), ceilingMB)
	minMB := min(max(maxMB/4, 2*segmentMB), maxMB)
	return walSize{maxMB: maxMB, minMB: minMB}
}

// settings are the server settings (postgres -c) for this budget.
func (w walSize) settings() []string {
	maxWAL := strconv.FormatUint(w.maxMB, 10) + "MB"
	return []string{
		"max_wal_size=" + maxWAL,
		"min_wal_size=" + strconv.FormatUint(w.minMB, 10) + "MB",
		"wal_keep_size=0",
		"max_slot_wal_keep_size=" + maxWAL,
	}
}

// diskSpace returns the size of the filesystem holding path and the space
// on it that an unprivileged user (the server) may still use.
func diskSpace(path string) (size, free uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, 0, &os.PathError{Op: "statfs", Path: path, Err: err}
	}
	return uint64(st.Blocks) * uint64(st.Bsize), uint64(st.Bavail) * uint64(st.Bsize), nil
}
