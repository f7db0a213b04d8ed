//go:build unix

package durable

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// LockDir takes an exclusive advisory lock on dir/LOCK, so two processes
// configured with the same data directory cannot interleave writes to one
// log (what names it in errors). The kernel drops the lock when the process
// dies; the caller keeps the file open for as long as it writes.
func LockDir(dir, what string) (*os.File, error) {
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", what, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if err == syscall.EWOULDBLOCK {
			return nil, fmt.Errorf("lock %s: %s is in use by another process", what, dir)
		}
		return nil, fmt.Errorf("lock %s %s: %w", what, path, err)
	}
	return f, nil
}
