package rocketmqfake

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

type serverKind int

const (
	serverNamesrv serverKind = iota + 1
	serverBroker
)

func (k serverKind) String() string {
	if k == serverNamesrv {
		return "namesrv"
	}
	return "broker"
}

// conn is one accepted client connection.
type conn struct {
	f      *Fake
	nc     net.Conn
	server serverKind
	remote string

	wmu       sync.Mutex // one frame at a time on the socket
	closed    chan struct{}
	closeOnce sync.Once
	byFake    atomic.Bool // we closed it (Stop, DropConnections, fault)

	clientID string // set by the first heartbeat; guarded by f.mu
}

// gate implements Pause/Resume: while closed, no request is processed and
// no response written, as if the network had gone silent. TCP keeps the
// bytes, so what was sent during the pause is handled after it (late), as
// after a real partition heals.
type gate struct {
	mu     sync.Mutex
	open   chan struct{} // closed while the gate is open
	paused bool
}

func newGate() gate {
	ch := make(chan struct{})
	close(ch)
	return gate{open: ch}
}

func (g *gate) pause() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.paused {
		g.paused = true
		g.open = make(chan struct{})
	}
}

func (g *gate) resume() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.paused {
		g.paused = false
		close(g.open)
	}
}

func (g *gate) isPaused() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.paused
}

// wait blocks while paused; it returns false if cancel closed first.
func (g *gate) wait(cancel <-chan struct{}) bool {
	g.mu.Lock()
	ch := g.open
	g.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-cancel:
		return false
	}
}

// serve runs the accept loop of one listener.
func (f *Fake) serve(ln net.Listener, kind serverKind) {
	f.loops.add()
	go func() {
		defer f.loops.done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				// Closed listener (Stop / RefuseConnections) ends the loop;
				// anything else is transient (EMFILE...), so back off briefly.
				if errors.Is(err, net.ErrClosed) {
					return
				}
				time.Sleep(20 * time.Millisecond)
				continue
			}
			c := &conn{f: f, nc: nc, server: kind, remote: nc.RemoteAddr().String(), closed: make(chan struct{})}
			f.mu.Lock()
			if !f.running || f.stopping {
				f.mu.Unlock()
				nc.Close()
				continue
			}
			f.conns[c] = struct{}{}
			f.mu.Unlock()
			f.loops.add()
			go c.readLoop()
		}
	}()
}

func (c *conn) readLoop() {
	defer c.f.loops.done()
	defer c.close(false)
	br := bufio.NewReaderSize(c.nc, 64<<10)
	for {
		cmd, err := readCommand(br)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !c.byFake.Load() {
				c.f.log.Debug("rocketmqfake: read", "server", c.server, "remote", c.remote, "err", err)
			}
			return
		}
		c.f.lastRequest.Store(time.Now().UnixNano())
		if !c.f.gate.wait(c.closed) {
			return
		}
		if cmd.isResponse() {
			continue // answers to our oneway notifications; nothing waits for them
		}
		c.f.handlers.add()
		go c.f.handle(c, cmd)
	}
}

// close closes the socket once. byFake records who ended the connection,
// which decides whether the client leaves its consumer groups.
func (c *conn) close(byFake bool) {
	c.closeOnce.Do(func() {
		if byFake {
			c.byFake.Store(true)
		}
		close(c.closed)
		c.nc.Close()
		c.f.connClosed(c)
	})
}

func (c *conn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// write sends one command, waiting while the fake is paused.
func (c *conn) write(cmd *command) error {
	head, err := cmd.encodeHead()
	if err != nil {
		return err
	}
	if !c.f.gate.wait(c.closed) {
		return net.ErrClosed
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.isClosed() {
		return net.ErrClosed
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	frame := make(net.Buffers, 0, 2+len(cmd.records))
	frame = append(frame, head, cmd.Body)
	frame = append(frame, cmd.records...)
	if _, err := frame.WriteTo(c.nc); err != nil {
		c.close(false)
		return err
	}
	return nil
}

// closeAllConns closes every connection on the fake's initiative.
func (f *Fake) closeAllConns() {
	f.mu.Lock()
	conns := make([]*conn, 0, len(f.conns))
	for c := range f.conns {
		conns = append(conns, c)
	}
	f.mu.Unlock()
	for _, c := range conns {
		c.close(true)
	}
}

// handle processes one request on its own goroutine, so a long-polling pull
// or an injected delay does not hold up the connection's other requests.
func (f *Fake) handle(c *conn, req *command) {
	defer f.handlers.done()
	f.mu.Lock()
	f.reqCounts[req.Code]++
	stopping, stopCh := f.stopping, f.stopCh
	rule := f.matchFaultLocked(c.server, req.Code)
	f.mu.Unlock()
	f.log.Debug("rocketmqfake: request", "server", c.server, "code", RequestName(req.Code), "remote", c.remote, "ext", req.ExtFields)

	// While Stop drains, refuse pulls and sends: the client backs a failed
	// pull off for 3 s, so it is not mid-request when the socket closes.
	// Everything else is answered normally — in particular
	// GET_CONSUMER_LIST_BY_GROUP, whose error answer rocketmq-client-go
	// reads as "no consumers" and drops all its queues until the next 20 s
	// rebalance.
	if stopping && (req.Code == ReqPullMessage || isSendCode(req.Code)) {
		f.reply(c, req, response(req, ResServiceNotAvailable, "rocketmqfake: broker is stopping"))
		return
	}
	if rule != nil {
		f.log.Debug("rocketmqfake: fault", "server", c.server, "code", RequestName(req.Code), "fault", rule.Fault)
		if !sleepCtx(rule.Delay, stopCh, c.closed) {
			// Stopping: answer rather than leave the client waiting on a
			// socket about to close (a no-op if it closed already).
			f.reply(c, req, response(req, ResServiceNotAvailable, "rocketmqfake: broker is stopping"))
			return
		}
		switch {
		case rule.Drop:
			return
		case rule.CloseConn:
			c.close(true)
			return
		case rule.Error != 0:
			f.reply(c, req, response(req, rule.Error, "rocketmqfake: injected fault"))
			return
		}
	}

	var resp *command
	if c.server == serverNamesrv {
		resp = f.handleNamesrv(c, req)
	} else {
		resp = f.handleBroker(c, req, stopCh)
	}
	if resp != nil {
		f.reply(c, req, resp)
	}
}

// reply writes resp unless the request was oneway.
func (f *Fake) reply(c *conn, req *command, resp *command) {
	if req.isOneway() {
		return
	}
	if err := c.write(resp); err != nil && !errors.Is(err, net.ErrClosed) {
		f.log.Debug("rocketmqfake: write", "remote", c.remote, "err", err)
	}
}

func isSendCode(code int16) bool {
	switch code {
	case ReqSendMessage, ReqSendMessageV2, ReqSendBatchMessage, ReqSendReplyMessage, ReqSendReplyMessageV2:
		return true
	}
	return false
}

func (f *Fake) handleBroker(c *conn, req *command, stopCh chan struct{}) *command {
	if isSendCode(req.Code) {
		return f.handleSend(c, req)
	}
	switch req.Code {
	case ReqPullMessage:
		return f.handlePull(c, req, stopCh)
	case ReqQueryConsumerOffset:
		return f.handleQueryConsumerOffset(req)
	case ReqUpdateConsumerOffset:
		return f.handleUpdateConsumerOffset(req)
	case ReqGetMaxOffset, ReqGetMinOffset, ReqSearchOffsetByTimestamp, ReqGetEarliestMsgStoreTime:
		return f.handleQueueOffsets(req)
	case ReqHeartBeat:
		return f.handleHeartbeat(c, req)
	case ReqUnregisterClient:
		return f.handleUnregister(req)
	case ReqGetConsumerListByGroup:
		return f.handleConsumerList(req)
	case ReqConsumerSendMsgBack:
		return f.handleSendBack(req)
	case ReqEndTransaction:
		return f.handleEndTransaction(req)
	case ReqLockBatchMQ:
		return f.handleLock(req)
	case ReqUnlockBatchMQ:
		return f.handleUnlock(req)
	case ReqQueryMessage:
		return f.handleQueryMessage(req)
	case ReqViewMessageByID:
		return f.handleViewMessage(req)
	case ReqCreateTopic:
		return f.handleCreateTopic(req)
	case ReqDeleteTopicInBroker:
		return f.handleDeleteTopic(req)
	}
	return f.unsupported(c, req)
}

func (f *Fake) unsupported(c *conn, req *command) *command {
	f.log.Warn("rocketmqfake: unsupported request code", "server", c.server, "code", req.Code,
		"name", RequestName(req.Code), "remote", c.remote, "ext", req.ExtFields)
	return response(req, ResRequestCodeNotSupported,
		"rocketmqfake: request code "+RequestName(req.Code)+" not supported")
}

// sendOneway pushes a broker→client request (NOTIFY_CONSUMER_IDS_CHANGED).
// It runs on its own goroutine so a paused fake or a slow client cannot
// block the handler that triggered it.
func (f *Fake) sendOneway(c *conn, code int16, ext map[string]string) {
	cmd := &command{Code: code, Version: brokerVersion, Opaque: f.opaque.Add(1), Flag: flagOneway,
		ExtFields: ext, serialize: serializeJSON}
	f.handlers.add()
	go func() {
		defer f.handlers.done()
		_ = c.write(cmd)
	}()
}
