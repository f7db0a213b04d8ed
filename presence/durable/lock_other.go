//go:build !unix

package durable

import (
	"fmt"
	"os"
	"path/filepath"
)

// LockDir only creates dir/LOCK where flock is unavailable.
func LockDir(dir, what string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", what, err)
	}
	return f, nil
}
