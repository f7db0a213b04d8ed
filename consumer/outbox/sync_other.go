//go:build !linux

package outbox

import "os"

// syncFile makes f's data durable.
func syncFile(f *os.File) error { return f.Sync() }
