//go:build !linux

package outbox

import (
	"errors"
	"fmt"
	"syscall"
)

// freeBytes is not implemented here: the reserve is not kept (the guard
// logs once that it cannot measure), but a full disk is still handled.
func freeBytes(path string) (int64, error) {
	return 0, fmt.Errorf("measure free space of %s: %w", path, errors.ErrUnsupported)
}

// noSpace reports whether err says the filesystem is full.
func noSpace(err error) bool { return errors.Is(err, syscall.ENOSPC) }
