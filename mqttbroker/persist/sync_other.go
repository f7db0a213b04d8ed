//go:build !linux

package persist

import "os"

func syncFile(f *os.File) error { return f.Sync() }
