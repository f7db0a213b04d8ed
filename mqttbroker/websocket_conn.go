package mqttbroker

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"
)

// wsConn carries MQTT in WebSocket binary frames (RFC 6455; MQTT 3.1.1
// section 6) over a connection whose opening handshake is done.
//
// It is written here rather than taken from gorilla/websocket or
// coder/websocket: both read through a buffered reader the connection
// keeps for life and need a goroutine blocked in a read per connection,
// which would make an idle WebSocket client cost a stack and 4+ KiB of
// buffers where an idle TCP client costs neither. wsConn keeps no buffer:
// Read decodes frames in place in the caller's buffer (the broker's pooled
// read buffer, held only while bytes are buffered), so once it has
// returned every payload byte it has read, nothing is pending above the
// socket and the broker parks the connection on the socket's descriptor
// like a plain one (see pollConn). The server side of the framing is
// small: unmask, reassemble nothing (MQTT is a byte stream, so data frames
// are just concatenated), answer ping and close.
type wsConn struct {
	nc      net.Conn
	maxSize int64 // largest frame payload, and message (fragments summed)

	// pending holds bytes the handshake read past the request; they are
	// decoded before the socket is read.
	pending []byte

	// Frame decoding, the reading goroutine's own.
	hdr       [14]byte // a frame header read so far
	hdrN      uint8
	remaining int64   // payload bytes left in the current frame
	mask      [4]byte // the current frame's masking key
	maskPos   uint8
	opcode    byte
	fin       bool
	inMessage bool   // a fragmented data message is open (continuations expected)
	msgSize   int64  // payload bytes of the open message
	control   []byte // the current control frame's payload; nil between control frames
	readErr   error  // returned by the next Read, after the payload before it
	echoCode  uint16 // the close code to echo once readErr (io.EOF) is returned

	wmu           sync.Mutex // one frame at a time on the socket
	writeDeadline time.Time  // the broker's, restored after a control frame's own
	closeSent     atomic.Bool
}

// WebSocket opcodes and close codes [RFC 6455 5.2, 7.4.1].
const (
	wsContinuation = 0x0
	wsText         = 0x1
	wsBinary       = 0x2
	wsClose        = 0x8
	wsPing         = 0x9
	wsPong         = 0xa

	wsCloseNormal      = 1000
	wsCloseProtocol    = 1002
	wsCloseUnsupported = 1003
	wsCloseInvalidData = 1007
	wsCloseTooBig      = 1009

	// wsControlTimeout bounds the write of a pong or close frame.
	wsControlTimeout = 5 * time.Second
)

func newWSConn(nc net.Conn, pending []byte, maxSize int) *wsConn {
	return &wsConn{nc: nc, pending: pending, maxSize: int64(maxSize)}
}

// wsError is a violation of the WebSocket framing: the connection is
// closed with code, and the broker records a protocol error.
func wsError(code uint16, reason string) error {
	return &wsProtocolError{protocolError{Clause: "RFC6455-5", Reason: "websocket: " + reason}, code}
}

type wsProtocolError struct {
	protocolError
	code uint16
}

func (e *wsProtocolError) Unwrap() error { return &e.protocolError }

// Read returns payload bytes of binary frames. It answers pings and close
// frames on the way; a close frame ends the stream (io.EOF).
func (ws *wsConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if ws.readErr != nil {
			// The close frame goes out only now, after whatever the
			// broker answered to the payload before the error: nothing
			// may follow it [RFC 6455 5.5.1].
			ws.failed(ws.readErr)
			return 0, ws.readErr
		}
		var n int
		var err error
		if len(ws.pending) > 0 {
			n = copy(p, ws.pending)
			if ws.pending = ws.pending[n:]; len(ws.pending) == 0 {
				ws.pending = nil
			}
		} else {
			n, err = ws.nc.Read(p)
		}
		out, derr := ws.decode(p[:n])
		if derr != nil {
			ws.readErr = derr
			err = nil
		}
		if out > 0 {
			return out, nil // an error recurs on the next Read
		}
		if err != nil {
			return 0, err
		}
		// Only headers or control frames: the payload is yet to come.
	}
}

// failed sends the close frame a framing error or the client's close
// calls for.
func (ws *wsConn) failed(err error) {
	if e, ok := errors.AsType[*wsProtocolError](err); ok {
		ws.sendClose(e.code)
	} else if ws.echoCode != 0 {
		ws.sendClose(ws.echoCode)
	}
}

// buffered returns the bytes read from the socket and not yet decoded,
// plus one for an error not yet returned: a connection with either must
// not park, for the socket would never signal them.
func (ws *wsConn) buffered() int {
	if ws.readErr != nil {
		return len(ws.pending) + 1
	}
	return len(ws.pending)
}

// decode turns the frames in b into payload, in place: payload bytes are
// moved to the front of b (never ahead of where they were read), and
// their count returned.
func (ws *wsConn) decode(b []byte) (out int, err error) {
	for i := 0; i < len(b); {
		if ws.remaining == 0 {
			need := ws.headerLen()
			for int(ws.hdrN) < need && i < len(b) {
				ws.hdr[ws.hdrN] = b[i]
				ws.hdrN++
				i++
				need = ws.headerLen()
			}
			if int(ws.hdrN) < need {
				return out, nil // the header continues in the next read
			}
			if err := ws.startFrame(); err != nil {
				return out, err
			}
			if ws.remaining == 0 {
				if err := ws.endFrame(); err != nil {
					return out, err
				}
			}
			continue
		}
		k := int(min(ws.remaining, int64(len(b)-i)))
		chunk := b[i : i+k]
		if ws.opcode >= wsClose {
			ws.unmask(chunk)
			ws.control = append(ws.control, chunk...)
		} else {
			copy(b[out:], chunk)
			ws.unmask(b[out : out+k])
			out += k
		}
		i += k
		ws.remaining -= int64(k)
		if ws.remaining == 0 {
			if err := ws.endFrame(); err != nil {
				return out, err
			}
		}
	}
	return out, nil
}

// headerLen is the length of the frame header being read, as far as its
// bytes so far tell [RFC 6455 5.2].
func (ws *wsConn) headerLen() int {
	if ws.hdrN < 2 || ws.hdr[1]&0x80 == 0 {
		return 2 // an unmasked frame is refused on its first two bytes
	}
	n := 2 + 4 // masking key: client frames are always masked
	switch ws.hdr[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	return n
}

// startFrame checks a complete frame header and starts its payload.
func (ws *wsConn) startFrame() error {
	h := ws.hdr[:ws.hdrN]
	ws.hdrN = 0
	fin, rsv, opcode := h[0]&0x80 != 0, h[0]&0x70, h[0]&0x0f
	if rsv != 0 {
		return wsError(wsCloseProtocol, "reserved bits set without an extension") // [RFC 6455 5.2]
	}
	if h[1]&0x80 == 0 {
		return wsError(wsCloseProtocol, "unmasked client frame") // [RFC 6455 5.1]
	}
	var size int64
	var key []byte
	switch l := h[1] & 0x7f; l {
	case 126:
		size, key = int64(binary.BigEndian.Uint16(h[2:4])), h[4:8]
		if size < 126 {
			return wsError(wsCloseProtocol, "length not minimally encoded")
		}
	case 127:
		u := binary.BigEndian.Uint64(h[2:10])
		if u>>63 != 0 {
			return wsError(wsCloseProtocol, "length with the most significant bit set")
		}
		size, key = int64(u), h[10:14]
		if size < 1<<16 {
			return wsError(wsCloseProtocol, "length not minimally encoded")
		}
	default:
		size, key = int64(l), h[2:6]
	}
	switch opcode {
	case wsClose, wsPing, wsPong:
		if !fin || size > 125 {
			return wsError(wsCloseProtocol, "fragmented or long control frame") // [RFC 6455 5.5]
		}
		ws.control = make([]byte, 0, size)
	case wsText:
		// MQTT is binary: data in a text frame closes the connection
		// [MQTT-6.0.0-1].
		return wsError(wsCloseUnsupported, "text frame (MQTT needs binary frames) [MQTT-6.0.0-1]")
	case wsBinary:
		if ws.inMessage {
			return wsError(wsCloseProtocol, "new message inside a fragmented one")
		}
		ws.msgSize = 0
	case wsContinuation:
		if !ws.inMessage {
			return wsError(wsCloseProtocol, "continuation frame without a message")
		}
	default:
		return wsError(wsCloseProtocol, "reserved opcode")
	}
	if opcode < wsClose {
		ws.msgSize += size
		if size > ws.maxSize || ws.msgSize > ws.maxSize {
			return wsError(wsCloseTooBig, "frame or message larger than the largest MQTT packet")
		}
		ws.inMessage = !fin
	}
	ws.opcode, ws.fin, ws.remaining = opcode, fin, size
	copy(ws.mask[:], key)
	ws.maskPos = 0
	return nil
}

// unmask unmasks the next payload bytes of the frame [RFC 6455 5.3].
func (ws *wsConn) unmask(b []byte) {
	pos := ws.maskPos
	for i := range b {
		b[i] ^= ws.mask[pos&3]
		pos++
	}
	ws.maskPos = pos & 3
}

// endFrame acts on a complete frame: answers a ping, ends the stream on a
// close.
func (ws *wsConn) endFrame() error {
	payload := ws.control
	ws.control = nil
	switch ws.opcode {
	case wsPing:
		return ws.writeControl(wsPong, payload) // [RFC 6455 5.5.3]
	case wsClose:
		code := uint16(wsCloseNormal)
		switch {
		case len(payload) == 1:
			return wsError(wsCloseProtocol, "close frame of one byte")
		case len(payload) >= 2:
			code = binary.BigEndian.Uint16(payload)
			if !validCloseCode(code) {
				return wsError(wsCloseProtocol, "invalid close code")
			}
			if !utf8.Valid(payload[2:]) {
				return wsError(wsCloseInvalidData, "close reason not UTF-8")
			}
		}
		ws.echoCode = code // echoed when the stream ends [RFC 6455 5.5.1]
		return io.EOF
	}
	return nil
}

// validCloseCode reports whether a peer may send code [RFC 6455 7.4].
func validCloseCode(code uint16) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1011, code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// sendClose sends a close frame once.
func (ws *wsConn) sendClose(code uint16) {
	if ws.closeSent.Swap(true) {
		return
	}
	ws.writeControl(wsClose, binary.BigEndian.AppendUint16(nil, code))
}

// writeControl writes a control frame with a deadline of its own.
func (ws *wsConn) writeControl(opcode byte, payload []byte) error {
	ws.wmu.Lock()
	defer ws.wmu.Unlock()
	ws.nc.SetWriteDeadline(time.Now().Add(wsControlTimeout))
	_, err := ws.nc.Write(appendFrameHeader(make([]byte, 0, 2+len(payload)), opcode, len(payload), payload))
	ws.nc.SetWriteDeadline(ws.writeDeadline)
	return err
}

// appendFrameHeader appends an unmasked server frame header (FIN set) and
// then payload.
func appendFrameHeader(b []byte, opcode byte, size int, payload []byte) []byte {
	b = append(b, 0x80|opcode)
	switch {
	case size < 126:
		b = append(b, byte(size))
	case size < 1<<16:
		b = binary.BigEndian.AppendUint16(append(b, 126), uint16(size))
	default:
		b = binary.BigEndian.AppendUint64(append(b, 127), uint64(size))
	}
	return append(b, payload...)
}

// wsCopyLimit: payloads up to this size are copied behind their header
// for a single write; larger ones are written after it. (net.Buffers'
// writev would leave an iovec slice cached in the socket for life.)
const wsCopyLimit = readBufferSize - 10

// Write sends p as one binary frame.
func (ws *wsConn) Write(p []byte) (int, error) {
	ws.wmu.Lock()
	defer ws.wmu.Unlock()
	if len(p) <= wsCopyLimit {
		buf := readBuffers.Get().(*[]byte)
		defer readBuffers.Put(buf)
		frame := appendFrameHeader((*buf)[:0], wsBinary, len(p), p)
		n, err := ws.nc.Write(frame)
		return max(0, n-(len(frame)-len(p))), err
	}
	var hdr [10]byte
	if _, err := ws.nc.Write(appendFrameHeader(hdr[:0], wsBinary, len(p), nil)); err != nil {
		return 0, err
	}
	return ws.nc.Write(p)
}

// Close sends a close frame if the socket takes it at once (a client that
// reads nothing must not hold up whoever closes), then closes the socket.
func (ws *wsConn) Close() error {
	if !ws.closeSent.Swap(true) && ws.wmu.TryLock() {
		ws.nc.SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
		ws.nc.Write(appendFrameHeader(nil, wsClose, 2, binary.BigEndian.AppendUint16(nil, wsCloseNormal)))
		ws.wmu.Unlock()
	}
	return ws.nc.Close()
}

func (ws *wsConn) LocalAddr() net.Addr               { return ws.nc.LocalAddr() }
func (ws *wsConn) RemoteAddr() net.Addr              { return ws.nc.RemoteAddr() }
func (ws *wsConn) SetReadDeadline(t time.Time) error { return ws.nc.SetReadDeadline(t) }
func (ws *wsConn) SetDeadline(t time.Time) error {
	ws.SetReadDeadline(t)
	return ws.SetWriteDeadline(t)
}

func (ws *wsConn) SetWriteDeadline(t time.Time) error {
	ws.wmu.Lock()
	defer ws.wmu.Unlock()
	ws.writeDeadline = t
	return ws.nc.SetWriteDeadline(t)
}

// SetKeepAliveConfig passes TCP keepalive on to the socket (see
// conn.tcpKeepalive), beneath TLS too (wss).
func (ws *wsConn) SetKeepAliveConfig(cfg net.KeepAliveConfig) error {
	if tc, ok := socketOf(ws.nc).(interface {
		SetKeepAliveConfig(net.KeepAliveConfig) error
	}); ok {
		return tc.SetKeepAliveConfig(cfg)
	}
	return nil
}

// useWebSocket makes c read through the framing (the reader's io.Reader
// path) and park, when idle, on the socket under it — beneath TLS too
// (wss): like a TLS connection, it is then checked for decrypted bytes
// before parking (tlsBuffered), since the socket would not signal them.
func (c *conn) useWebSocket(ws *wsConn) {
	sc, ok := socketOf(ws.nc).(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	c.reader.raw = raw // for parking only: no rawRead
	if c.s.idle != nil {
		c.parkToken = c.s.idle.token()
	}
}

// tlsOf returns the TLS connection of nc: nc itself (MQTT over TLS) or
// the one beneath its WebSocket framing (wss). The TLS options
// (Config.TLSIdentity, TLSRequireClientIDMatch) and the connect event's
// TLS details apply to both alike.
func tlsOf(nc net.Conn) (*tls.Conn, bool) {
	if ws, ok := nc.(*wsConn); ok {
		nc = ws.nc
	}
	tc, ok := nc.(*tls.Conn)
	return tc, ok
}

// framingBuffered returns the bytes a framing layer of nc has read from
// the socket and not yet returned: a connection with any cannot be parked
// on the socket, which would not signal them.
func framingBuffered(nc net.Conn) int {
	if ws, ok := nc.(*wsConn); ok {
		return ws.buffered()
	}
	return 0
}
