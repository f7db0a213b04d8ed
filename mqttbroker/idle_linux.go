package mqttbroker

import (
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// idlePoller holds idle connections without a goroutine each: a connection
// with nothing to read is registered (one-shot) in an epoll instance of
// its own and its goroutine ends; when the socket becomes readable, or the
// connection is kicked or its keepalive runs out, a new goroutine takes it
// up again. An idle connection then costs its state and no stack.
//
// A connection is parked while it is in parked; whoever removes it (the
// poller, kick, the keepalive timer) owns its reading side from then on
// and must run it.
type idlePoller struct {
	epoll *os.File        // the epoll fd, itself waited on through the runtime poller
	ctl   syscall.RawConn // of epoll: Control keeps the fd open while in use

	mu     sync.Mutex
	parked map[uint64]*conn // by conn.parkToken

	lastToken atomic.Uint64

	events [128]syscall.EpollEvent // wait's buffer
}

// newIdlePoller returns a poller, or nil when epoll is unavailable (the
// connections then keep their goroutine).
func newIdlePoller() *idlePoller {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil
	}
	f := os.NewFile(uintptr(fd), "mqttbroker-epoll")
	ctl, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil
	}
	return &idlePoller{epoll: f, ctl: ctl, parked: make(map[uint64]*conn)}
}

// token returns a fresh parking token: tokens are never reused, so an
// event that arrives for a connection already taken up (or finished) finds
// nothing.
func (p *idlePoller) token() uint64 { return p.lastToken.Add(1) }

// park registers c, whose reader holds no buffered bytes, and reports
// whether c is parked — or was already taken up again by someone else; in
// both cases the calling goroutine must leave c alone. False means c could
// not be parked and the caller keeps reading it.
func (p *idlePoller) park(c *conn) bool {
	if c.reader.raw == nil || c.parkToken == 0 {
		return false
	}
	token := c.parkToken
	c.armKeepalive()
	op := syscall.EPOLL_CTL_MOD
	if !c.epollAdded {
		op = syscall.EPOLL_CTL_ADD
		c.epollAdded = true // owned by the reading side, like the reader
	}
	// Into the map first, then arm: an event can only come once c is
	// findable.
	p.mu.Lock()
	p.parked[token] = c
	p.mu.Unlock()
	var ctlErr error
	err := p.ctl.Control(func(epfd uintptr) {
		ctlErr = c.reader.raw.Control(func(fd uintptr) {
			ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT}
			ev.Fd, ev.Pad = int32(uint32(token)), int32(uint32(token>>32))
			ctlErr = syscall.EpollCtl(int(epfd), op, int(fd), &ev)
		})
	})
	if err == nil && ctlErr == nil {
		return true
	}
	// Not armed (the socket or the poller is closed): take c back unless
	// kick or the timer already did.
	return !p.take(token)
}

// take removes a parked connection and reports whether it was parked.
func (p *idlePoller) take(token uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.parked[token]; !ok {
		return false
	}
	delete(p.parked, token)
	return true
}

// expire takes c up if it is parked and its keepalive deadline has
// passed (a later park moves the deadline, and its timer fires again).
func (p *idlePoller) expire(c *conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.parked[c.parkToken]; !ok || time.Now().UnixNano() < c.idleDeadline.Load() {
		return false
	}
	delete(p.parked, c.parkToken)
	return true
}

// wait blocks until parked connections become readable and takes them
// out of the poller: the first is returned, resume is called for each of
// the others. It returns false once the poller is closed. One goroutine
// waits at a time (the server's pollIdle), so the event buffer is its own.
func (p *idlePoller) wait(resume func(*conn)) (first *conn, ok bool) {
	for {
		n := 0
		err := p.ctl.Read(func(epfd uintptr) bool {
			var err error
			n, err = syscall.EpollWait(int(epfd), p.events[:], 0)
			return err != syscall.EINTR && n > 0 // else wait for readiness
		})
		if err != nil {
			return nil, false // closed
		}
		for _, ev := range p.events[:n] {
			token := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			p.mu.Lock()
			c := p.parked[token]
			delete(p.parked, token)
			p.mu.Unlock()
			switch {
			case c == nil: // taken up meanwhile by kick or the keepalive timer
			case first == nil:
				first = c
			default:
				resume(c)
			}
		}
		if first != nil {
			return first, true
		}
	}
}

// close ends wait; connections still parked stay registered and are taken
// up by kick.
func (p *idlePoller) close() { p.epoll.Close() }
