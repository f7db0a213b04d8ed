package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/presenced/presenced/presence/durable"
)

// The checkpoint file holds the sequence number of the last acknowledged
// record:
//
//	8 bytes    magic "PRSOBXA1"
//	uint64 LE  acknowledged sequence number
//	uint32 LE  CRC-32C of the 16 bytes above
const (
	checkpointName    = "checkpoint"
	checkpointTmpName = "checkpoint.tmp"
	checkpointMagic   = "PRSOBXA1"
	checkpointBytes   = 20
)

// readCheckpoint returns the acknowledged sequence number, 0 when there is
// no checkpoint yet, and an error when the file exists but is not valid.
func readCheckpoint(dir string) (acked uint64, exists bool, err error) {
	path := filepath.Join(dir, checkpointName)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read outbox checkpoint: %w", err)
	}
	if len(data) != checkpointBytes || string(data[:8]) != checkpointMagic ||
		crc32.Checksum(data[:16], castagnoli) != binary.LittleEndian.Uint32(data[16:]) {
		return 0, true, fmt.Errorf("read outbox checkpoint %s: not a valid checkpoint (%d bytes)", path, len(data))
	}
	return binary.LittleEndian.Uint64(data[8:]), true, nil
}

// writeCheckpoint replaces the checkpoint atomically: write a temporary
// file, fsync it, rename it over the old one, fsync the directory. A crash
// at any point leaves either the old or the new checkpoint, never a torn
// one.
func writeCheckpoint(dir string, dirFile *os.File, acked uint64) error {
	data := make([]byte, 0, checkpointBytes)
	data = append(data, checkpointMagic...)
	data = binary.LittleEndian.AppendUint64(data, acked)
	data = binary.LittleEndian.AppendUint32(data, crc32.Checksum(data, castagnoli))

	tmp := filepath.Join(dir, checkpointTmpName)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write outbox checkpoint: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write outbox checkpoint: %w", err)
	}
	if err := durable.SyncFile(f); err != nil {
		f.Close()
		return fmt.Errorf("write outbox checkpoint: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write outbox checkpoint: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, checkpointName)); err != nil {
		return fmt.Errorf("write outbox checkpoint: %w", err)
	}
	if err := dirFile.Sync(); err != nil {
		return fmt.Errorf("write outbox checkpoint: sync directory: %w", err)
	}
	return nil
}
