package mqttbroker

import (
	"net"
	"sync"
	"time"

	"github.com/presenced/presenced/presence"
)

// outbound is the write side of a conn. The reading goroutine writes its own
// replies directly (so a client that floods without reading only blocks
// itself); packets from other goroutines are queued and written by a writer
// goroutine started on demand.
type outbound struct {
	wmu sync.Mutex // serializes writes to the socket

	qmu     sync.Mutex
	queue   [][]byte // encoded packets waiting for the writer
	writing bool     // a writer goroutine is running
	ready   bool     // CONNACK is out: queued packets may follow
	stopped bool     // the connection is finished; nothing more is queued
}

// writeNow writes encoded packets from the reading goroutine.
func (c *conn) writeNow(bufs ...[]byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
	if len(bufs) == 1 {
		// A plain write: writev would leave an iovec slice cached in the
		// socket for the rest of the connection's life.
		n, err := c.nc.Write(bufs[0])
		c.s.stats.bytesOut.Add(int64(n))
		return err
	}
	nb := net.Buffers(bufs)
	n, err := nb.WriteTo(c.nc)
	c.s.stats.bytesOut.Add(n)
	return err
}

// send writes one packet from the reading goroutine.
func (c *conn) send(p packet) error { return c.writeNow(p.appendTo(nil)) }

// enqueue queues an encoded packet for the writer. A droppable packet (QoS
// 0) is refused when the queue is full; it returns false when the packet
// will not be written.
func (c *conn) enqueue(b []byte, droppable bool) bool {
	c.qmu.Lock()
	if c.stopped {
		c.qmu.Unlock()
		return false
	}
	if droppable && len(c.queue) >= c.s.cfg.MaxQueuedMessages {
		c.qmu.Unlock()
		c.s.stats.dropped.Add(1)
		return false
	}
	c.queue = append(c.queue, b)
	start := c.ready && !c.writing
	if start {
		c.writing = true
	}
	c.qmu.Unlock()
	if start {
		c.startWriter()
	}
	return true
}

// startOutbound lets queued packets go out once CONNACK is written.
func (c *conn) startOutbound() {
	c.qmu.Lock()
	c.ready = true
	start := len(c.queue) > 0 && !c.writing && !c.stopped
	if start {
		c.writing = true
	}
	c.qmu.Unlock()
	if start {
		c.startWriter()
	}
}

// stopOutbound drops what is queued and refuses more.
func (c *conn) stopOutbound() {
	c.qmu.Lock()
	c.stopped = true
	c.queue = nil
	c.qmu.Unlock()
}

func (c *conn) startWriter() {
	if !c.s.goFunc(c.writeLoop) {
		// The server is stopping and closes this connection anyway.
		c.qmu.Lock()
		c.writing = false
		c.qmu.Unlock()
	}
}

// writeLoop writes queued packets until the queue is empty, then exits.
func (c *conn) writeLoop() {
	for {
		c.qmu.Lock()
		batch := c.queue
		c.queue = nil
		if len(batch) == 0 || c.stopped {
			c.writing = false
			c.qmu.Unlock()
			return
		}
		c.qmu.Unlock()
		if err := c.writeNow(batch...); err != nil {
			c.kick(presence.ReasonNetworkError)
			c.qmu.Lock()
			c.writing = false
			c.queue = nil
			c.qmu.Unlock()
			return
		}
	}
}
