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
//
// What is queued is bounded in bytes, not packets: a packet count lets a
// few large messages hold hundreds of MB for a client that does not read.
// pending counts the queue and the batch being written — the bytes the
// kernel has not taken yet. The kernel's own send buffer comes on top, so a
// client past MaxOutboundBytes is well behind, and is disconnected: that
// frees its memory at once and says why (tcpclean slow_consumer).
//
// The check is made on QoS 0 packets (counting everything pending): QoS 1
// and 2 packets are already flow-controlled by the in-flight window — at
// most InflightWindow of them wait for a client, the rest stay in its
// session — and must not trip it, or a persistent client whose window of
// large messages exceeds the cap would be disconnected again by every
// redelivery burst on reconnect [MQTT-4.4.0-1].
type outbound struct {
	wmu sync.Mutex // serializes writes to the socket

	qmu     sync.Mutex
	queue   []outPacket // waiting for the writer
	pending int         // bytes queued or being written
	writing bool        // a writer goroutine is running
	ready   bool        // CONNACK is out: queued packets may follow
	stopped bool        // the connection is finished; nothing more is queued
}

// outPacket is an encoded packet waiting for the writer. shared is set when
// wire is a message's QoS 0 encoding, one buffer for the whole fan-out: the
// global budget counts it once, however many connections hold it.
type outPacket struct {
	wire   []byte
	shared *sharedWire
}

// writeNow writes encoded packets from the reading goroutine.
func (c *conn) writeNow(bufs ...[]byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(bufs...)
}

// writeLocked is writeNow for a caller holding wmu.
func (c *conn) writeLocked(bufs ...[]byte) error {
	if c.v5 != nil && c.v5.disconnectWritten {
		return net.ErrClosed // nothing follows a DISCONNECT [MQTT-3.14.4-1]
	}
	if c.v5 != nil && c.v5.aliasesOut != nil {
		for i, b := range bufs { // each one packet (see v5_topic_alias.go)
			bufs[i] = c.v5.aliasesOut.apply(b, c.v5.maxPacketOut)
		}
	}
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

// send writes one packet from the reading goroutine; a v5
// acknowledgement that refuses something gets its Reason String
// (withProblemInfo).
func (c *conn) send(p packet) error { return c.writeNow(c.withProblemInfo(p).appendTo(nil)) }

// sendConnack writes the CONNACK accepting a client. For a v5 client the
// connection is marked acknowledged before the write lock is released, so
// a close that follows the client's reaction to it always finds the mark
// and sends its DISCONNECT (see sendDisconnect).
func (c *conn) sendConnack(p *connackPacket) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	err := c.writeLocked(p.appendTo(nil))
	if err == nil && c.v5 != nil {
		c.v5.acked.Store(true)
	}
	return err
}

// enqueue queues an encoded packet for the writer; shared holds b when
// other connections are given the same buffer, else nil. A droppable packet (QoS 0) is dropped when
// the queue is full or the broker over its outbound budget. It returns
// false when the packet will not be written.
func (c *conn) enqueue(b []byte, shared *sharedWire, droppable bool) bool {
	cfg := &c.s.cfg
	c.qmu.Lock()
	if c.stopped {
		c.qmu.Unlock()
		return false
	}
	switch {
	case droppable && c.pending+len(b) > cfg.MaxOutboundBytes:
		c.slowConsumerLocked()
		return false
	case c.pending > 0 && c.s.stats.outboundBytes.Load()+int64(len(b)) > cfg.MaxOutboundBytesTotal:
		// Over the global budget, connections that are behind lose the
		// packet; one that has caught up still gets it, so readers that
		// keep up are not punished for those that do not.
		if !droppable {
			c.slowConsumerLocked()
			return false
		}
		fallthrough
	case droppable && len(c.queue) >= cfg.MaxQueuedMessages:
		c.qmu.Unlock()
		c.s.stats.dropped.Add(1)
		return false
	}
	p := outPacket{b, shared}
	c.queue = append(c.queue, p)
	c.pending += len(b)
	c.s.chargeOutbound(p, 1)
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

// slowConsumerLocked stops the outbound side and disconnects the client.
// The caller holds qmu; it is released.
func (c *conn) slowConsumerLocked() {
	pending := c.pending
	c.stopped = true
	c.dropQueueLocked()
	c.qmu.Unlock()
	c.s.stats.slowConsumers.Add(1)
	c.s.log.Info("mqtt slow consumer disconnected", "client", c.clientID, "remote", c.remoteAddr(),
		"channel", c.channelID(), "pending_bytes", pending)
	c.kick(presence.ReasonSlowConsumer)
}

// chargeOutbound adds (sign 1) or removes (-1) p from the global count.
func (s *Server) chargeOutbound(p outPacket, sign int32) {
	if p.shared != nil {
		// Only the first connection to take the buffer and the last to
		// let it go change the count.
		if n := p.shared.writers.Add(sign); sign > 0 && n != 1 || sign < 0 && n != 0 {
			return
		}
	}
	s.stats.outboundBytes.Add(int64(sign) * int64(len(p.wire)))
}

// dropQueueLocked forgets what is queued. The caller holds qmu.
func (c *conn) dropQueueLocked() {
	c.releaseLocked(c.queue)
	c.queue = nil
}

// releaseLocked uncounts packets written or dropped. The caller holds qmu.
func (c *conn) releaseLocked(batch []outPacket) {
	for _, p := range batch {
		c.pending -= len(p.wire)
		c.s.chargeOutbound(p, -1)
	}
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
	c.dropQueueLocked()
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
	var bufs [][]byte
	for {
		c.qmu.Lock()
		batch := c.queue
		c.queue = nil
		if len(batch) == 0 || c.stopped {
			c.writing = false
			c.releaseLocked(batch)
			c.qmu.Unlock()
			return
		}
		c.qmu.Unlock()
		bufs = bufs[:0]
		for _, p := range batch {
			bufs = append(bufs, p.wire)
		}
		err := c.writeNow(bufs...)
		clear(bufs) // the written buffers may go
		c.qmu.Lock()
		c.releaseLocked(batch)
		if err != nil {
			c.writing = false
			c.dropQueueLocked()
			c.qmu.Unlock()
			c.kick(ioFailureReason(err))
			return
		}
		c.qmu.Unlock()
	}
}
