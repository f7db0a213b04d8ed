//go:build !linux

package durable

import "os"

// SyncFile makes f's data durable.
func SyncFile(f *os.File) error { return f.Sync() }
