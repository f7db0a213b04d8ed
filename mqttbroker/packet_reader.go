package mqttbroker

import (
	"errors"
	"io"
	"sync"
	"syscall"
)

// readBufferSize is the size of the pooled read buffers. A connection
// holds one only while it has bytes buffered; an idle connection holds
// none (see packetReader).
const readBufferSize = 4096

// largeChunk is the first allocation for a packet that does not fit a read
// buffer. The body doubles as bytes arrive, so a peer announcing a huge
// Remaining Length and sending nothing costs only this much.
const largeChunk = 4096

var readBuffers = sync.Pool{New: func() any { b := make([]byte, readBufferSize); return &b }}

// errInboundBudget: a packet larger than a read buffer would take more of
// Config.MaxInboundBytesTotal than is left. The connection is closed as a
// slow consumer (v5: DISCONNECT 0x97): holding its half-read packet for as
// long as the client takes to send the rest is what the budget bounds.
var errInboundBudget = errors.New("the broker's budget for packets being read is used up")

// errPacketTooLarge: the announced packet exceeds the configured limit.
var errPacketTooLarge = &protocolError{Clause: "MQTT-3.2.2-15", Reason: "packet larger than the server accepts", Code: rcPacketTooLarge}

// packetReader splits a byte stream into packets: a resumable reader over
// a pooled buffer. With a RawConn it waits for data without holding a
// buffer, so idle connections cost no read buffer at all.
type packetReader struct {
	raw     syscall.RawConn       // the socket, for parking; nil: not parkable
	rawRead func(fd uintptr) bool // nil: read through the io.Reader (always for TLS), holding a buffer while waiting
	rawErr  syscall.Errno         // the error of the last rawRead
	buf     *[]byte               // pooled; nil while nothing is buffered
	r, w    int                   // (*buf)[r:w] holds bytes read but not yet returned

	// budget is the server's, charged with the capacity of a large packet's
	// body while it is read and until the next readPacket (the body is
	// valid until then), or settle.
	budget  *byteBudget
	charged int64

	// midPacket, when set, is called before waiting for the rest of a
	// packet that has begun (conn.packetBegun).
	midPacket func()
}

// charge takes n bytes of the budget for the packet being read.
func (pr *packetReader) charge(n int) bool {
	if pr.budget == nil {
		return true
	}
	if !pr.budget.take(int64(n)) {
		return false
	}
	pr.charged += int64(n)
	return true
}

// settle gives back what the last large packet took: it has been handled,
// or the connection ends.
func (pr *packetReader) settle() {
	if pr.charged != 0 {
		pr.budget.give(pr.charged)
		pr.charged = 0
	}
}

// useRawConn makes the reader wait for data through raw. The callback is
// bound once, so waiting allocates nothing.
func (pr *packetReader) useRawConn(raw syscall.RawConn) {
	pr.raw = raw
	pr.rawRead = pr.readFD
}

// readPacket returns the first header byte and the body of the next packet.
// The body may alias the reader's buffer: it is valid until the next call.
// maxSize bounds the whole packet (header included) and is checked before
// anything is allocated. A stream ending inside a packet returns
// io.ErrUnexpectedEOF; ending between packets, io.EOF.
func (pr *packetReader) readPacket(src io.Reader, maxSize int) (byte, []byte, error) {
	pr.settle()
	for {
		if pr.buf != nil {
			avail := (*pr.buf)[pr.r:pr.w]
			if len(avail) >= 2 {
				n, used, err := decodeRemainingLength(avail[1:])
				if err != nil {
					return 0, nil, err
				}
				if used > 0 {
					headerLen := 1 + used
					total := headerLen + n
					if total > maxSize {
						return 0, nil, errPacketTooLarge
					}
					if total <= len(avail) {
						pr.r += total
						return avail[0], avail[headerLen:total], nil
					}
					if total > readBufferSize {
						return pr.readLarge(src, avail[0], avail[headerLen:], n)
					}
				}
			}
		}
		if err := pr.fill(src); err != nil {
			return 0, nil, err
		}
	}
}

// buffered returns the number of bytes read ahead of the packets returned.
func (pr *packetReader) buffered() int { return pr.w - pr.r }

// release returns the buffer to the pool once nothing is buffered.
func (pr *packetReader) release() {
	if pr.buf != nil && pr.r == pr.w {
		readBuffers.Put(pr.buf)
		pr.buf, pr.r, pr.w = nil, 0, 0
	}
}

// fill reads more bytes, compacting the buffer first.
func (pr *packetReader) fill(src io.Reader) error {
	pr.release()
	if pr.buf == nil && pr.rawRead != nil {
		return pr.fillRaw()
	}
	if pr.buf == nil {
		pr.buf = readBuffers.Get().(*[]byte)
	}
	if pr.r > 0 {
		pr.w = copy(*pr.buf, (*pr.buf)[pr.r:pr.w])
		pr.r = 0
	}
	if pr.w > 0 && pr.midPacket != nil {
		pr.midPacket()
	}
	n, err := src.Read((*pr.buf)[pr.w:])
	pr.w += n
	if n > 0 {
		return nil // a pending error recurs on the next read
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	if errors.Is(err, io.EOF) && pr.w > 0 {
		return io.ErrUnexpectedEOF
	}
	pr.release()
	return err
}

// fillRaw waits until the socket is readable and reads into a buffer taken
// from the pool only then; while waiting it holds none.
func (pr *packetReader) fillRaw() error {
	pr.rawErr = 0
	err := pr.raw.Read(pr.rawRead)
	switch {
	case err != nil:
		pr.release()
		return err
	case pr.rawErr != 0:
		pr.release()
		return pr.rawErr
	case pr.w == 0:
		pr.release()
		return io.EOF
	}
	return nil
}

// readFD is the RawConn callback: one read(2) into a pooled buffer, which
// goes back to the pool when there is nothing to read yet.
func (pr *packetReader) readFD(fd uintptr) bool {
	buf := readBuffers.Get().(*[]byte)
	for {
		n, err := syscall.Read(int(fd), *buf)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			readBuffers.Put(buf)
			return false // wait for data, then try again
		case err != nil:
			pr.rawErr = err.(syscall.Errno)
			n = 0
		}
		pr.buf, pr.r, pr.w = buf, 0, n
		return true
	}
}

// readLarge reads a body of n bytes that does not fit a read buffer; have
// are its first bytes, already buffered.
func (pr *packetReader) readLarge(src io.Reader, first byte, have []byte, n int) (byte, []byte, error) {
	size := max(min(n, largeChunk), len(have))
	if !pr.charge(size) {
		return 0, nil, errInboundBudget
	}
	body := make([]byte, 0, size)
	body = append(body, have...)
	pr.r = pr.w
	pr.release()
	for len(body) < n {
		if len(body) == cap(body) {
			if !pr.charge(min(n, 2*cap(body)) - cap(body)) {
				return 0, nil, errInboundBudget
			}
			grown := make([]byte, len(body), min(n, 2*cap(body)))
			copy(grown, body)
			body = grown
		}
		if pr.midPacket != nil {
			pr.midPacket()
		}
		k, err := src.Read(body[len(body):min(n, cap(body))])
		body = body[:len(body)+k]
		if k == 0 && err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, err
		}
	}
	return first, body, nil
}
