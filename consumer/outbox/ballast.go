package outbox

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// DefaultEmergencyBytes is Options.EmergencyBytes' default: room for about
// 45,000 disconnect/tcpclean records of ~370 bytes — one of each for every
// connection a broker with the default connection limit can hold.
const DefaultEmergencyBytes = 16 << 20

// ballastName is the file that holds the emergency space.
const ballastName = "emergency.space"

// ballast is disk space the outbox holds for the one case the reserve
// cannot cover: another program fills the volume to the last byte. Then
// even disconnect and tcpclean records — which must be written, or
// admitted clients stay online for good — would wait in memory, and the
// broker's close of those connections with them. The outbox keeps a file
// of EmergencyBytes of written zeros; the first write that fails for want
// of space deletes it and writes again at once into the room it leaves
// (while connect events stay refused). It is made again once the disk has
// room for it above the reserve.
type ballast struct {
	path      string
	size      int64
	log       *slog.Logger
	present   bool
	lastTry   time.Time
	tryEvery  time.Duration
	hasRoom   func(size int64) bool // enough free space to remake it
	syncFile  func(*os.File) error
	syncDirFn func() error
}

// errNoBallast: there was no ballast left to release.
var errNoBallast = errors.New("no emergency space left")

// ensure makes the ballast if it is missing and the disk has room. It is
// called by the flusher between writes, at most every tryEvery.
func (b *ballast) ensure(now time.Time) {
	if b == nil || b.present || now.Sub(b.lastTry) < b.tryEvery {
		return
	}
	b.lastTry = now
	if info, err := os.Stat(b.path); err == nil && info.Size() == b.size {
		b.present = true
		return
	}
	if b.hasRoom != nil && !b.hasRoom(b.size) {
		return
	}
	if err := b.make(); err != nil {
		_ = os.Remove(b.path)
		b.log.Warn("outbox: cannot set emergency disk space aside; a disk filled by others to the last byte would hold tcpclean events in memory", "file", b.path, "bytes", b.size, "err", err)
		return
	}
	b.present = true
	b.log.Info("outbox: emergency disk space set aside", "file", b.path, "bytes", b.size)
}

// make writes the ballast with real zeros (not a sparse or fallocated
// file, whose blocks some filesystems allocate only when written).
func (b *ballast) make() error {
	f, err := os.OpenFile(b.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	zeros := make([]byte, 1<<20)
	for written := int64(0); written < b.size; {
		n := min(int64(len(zeros)), b.size-written)
		if _, err := f.Write(zeros[:n]); err != nil {
			f.Close()
			return err
		}
		written += n
	}
	if err := b.syncFile(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return b.syncDirFn()
}

// release deletes the ballast, freeing its space for the write that just
// failed. It returns errNoBallast when there was none.
func (b *ballast) release() error {
	if b == nil {
		return errNoBallast
	}
	err := os.Remove(b.path)
	wasPresent := b.present
	b.present = false
	switch {
	case errors.Is(err, fs.ErrNotExist) && !wasPresent:
		return errNoBallast
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("release emergency disk space: %w", err)
	}
	b.log.Warn("outbox: disk full; emergency space released for disconnect/tcpclean events", "file", b.path, "bytes", b.size)
	return nil
}

func newBallast(dir string, size int64, log *slog.Logger, hasRoom func(int64) bool, syncFile func(*os.File) error, syncDir func() error) *ballast {
	if size <= 0 {
		return nil
	}
	return &ballast{path: filepath.Join(dir, ballastName), size: size, log: log, tryEvery: time.Second,
		hasRoom: hasRoom, syncFile: syncFile, syncDirFn: syncDir}
}
