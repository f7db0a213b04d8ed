package outbox

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/presenced/presenced/presence"
)

// diskCheckInterval is how old a free-space reading may be before an
// append takes a new one: statfs on every append would cost more than the
// rest of the hot path, and disk space does not vanish faster than this.
const diskCheckInterval = 250 * time.Millisecond

// diskGuard keeps a reserve of free space on the outbox's filesystem and
// on the watched ones. Readings are cached and shared through an atomic
// pointer, so the hot path costs a clock read and a load.
type diskGuard struct {
	reserve, resume int64
	paths           []string // the outbox directory first
	freeSpace       func(path string) (int64, error)
	now             func() time.Time
	log             *slog.Logger

	refreshing atomic.Bool // one refresh at a time; the others use the last reading
	reading    atomic.Pointer[diskReading]
}

// diskReading is one round of statfs over the guard's paths.
type diskReading struct {
	at   time.Time
	free int64  // the smallest free space found
	path string // where it was found
	low  bool   // refusable events are refused
	err  error  // the first path that could not be measured, if any
}

func newDiskGuard(reserve int64, paths []string, freeSpace func(string) (int64, error), now func() time.Time, log *slog.Logger) *diskGuard {
	if freeSpace == nil {
		freeSpace = freeBytes
	}
	if now == nil {
		now = time.Now
	}
	g := &diskGuard{
		reserve: reserve,
		// Refusing ends only once free space is back above 1.25 × the
		// reserve, so a disk hovering at the threshold does not make
		// CONNECTs flap between accepted and refused.
		resume:    reserve + reserve/4,
		paths:     paths,
		freeSpace: freeSpace,
		now:       now,
		log:       log,
	}
	g.reading.Store(&diskReading{})
	g.refresh()
	return g
}

// refusal returns the error refusing a connect or node event while free
// space is below the reserve, or nil.
func (g *diskGuard) refusal() error {
	r := g.current()
	if !r.low {
		return nil
	}
	return presence.Errorf(presence.EOVERLOADED,
		"disk nearly full: %d bytes free on %s, below the reserve of %d bytes; new connections refused until %d bytes are free",
		r.free, r.path, g.reserve, g.resume)
}

// current returns the latest reading, taking a new one when it is older
// than diskCheckInterval.
func (g *diskGuard) current() *diskReading {
	r := g.reading.Load()
	if g.now().Sub(r.at) < diskCheckInterval {
		return r
	}
	return g.refreshNow()
}

// refreshNow takes a new reading unless another goroutine is taking one,
// and returns the latest.
func (g *diskGuard) refreshNow() *diskReading {
	if g.refreshing.CompareAndSwap(false, true) {
		g.refresh()
		g.refreshing.Store(false)
	}
	return g.reading.Load()
}

func (g *diskGuard) refresh() {
	prev := g.reading.Load()
	next := &diskReading{at: g.now()}
	for _, path := range g.paths {
		free, err := g.freeSpace(path)
		if err != nil {
			if next.err == nil {
				next.err = err
			}
			continue
		}
		if next.path == "" || free < next.free {
			next.free, next.path = free, path
		}
	}
	switch {
	case next.path == "":
		// Nothing could be measured: keep the last verdict rather
		// than guess either way.
		next.free, next.path, next.low = prev.free, prev.path, prev.low
	case prev.low:
		next.low = next.free < g.resume
	default:
		next.low = next.free < g.reserve
	}
	g.reading.Store(next)

	// Log changes only, not every reading.
	if next.err != nil && prev.err == nil {
		g.log.Warn("outbox: cannot measure free disk space", "err", next.err)
	}
	switch {
	case next.low && !prev.low:
		g.log.Warn("outbox: disk nearly full; refusing new connections",
			"path", next.path, "free", next.free, "reserve", g.reserve)
	case prev.low && !next.low:
		g.log.Info("outbox: disk space is back; accepting new connections",
			"path", next.path, "free", next.free, "resume", g.resume)
	}
}

// roomFor reports whether the disk has room for size more bytes and still
// stays above the level at which refusals end.
func (o *Outbox) roomFor(size int64) bool {
	if o.guard == nil {
		return true
	}
	r := o.guard.refreshNow()
	return r.err == nil && !r.low && r.free-size >= o.guard.resume
}
