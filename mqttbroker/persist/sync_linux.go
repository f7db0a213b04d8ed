package persist

import (
	"os"
	"syscall"
)

// syncFile makes f's data durable. fdatasync skips the inode's timestamps,
// which recovery does not need; the file size, which it does, is flushed.
func syncFile(f *os.File) error {
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
