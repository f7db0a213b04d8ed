package durable

import (
	"os"
	"syscall"
)

// SyncFile makes f's data durable. fdatasync skips the inode's timestamps,
// which recovery does not need, and saves a metadata write per group
// commit; the file size, which recovery does need, is still flushed.
func SyncFile(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}
