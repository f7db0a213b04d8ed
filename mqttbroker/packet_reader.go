package mqttbroker

import (
	"errors"
	"io"
)

// smallReadBuffer is the read buffer every connection keeps. It is small so
// idle connections cost little; bigger packets get their own buffer, sized
// as their bytes arrive and dropped once decoded.
const smallReadBuffer = 256

// largeChunk is the first allocation for a packet that does not fit the
// small buffer. The buffer doubles as bytes arrive, so a peer announcing a
// huge Remaining Length and sending nothing costs only this much.
const largeChunk = 4096

// errPacketTooLarge: the announced packet exceeds the configured limit.
var errPacketTooLarge = &protocolError{Clause: "MQTT-2.2.3", Reason: "packet larger than the server accepts"}

// packetReader splits a byte stream into packets: a resumable reader over a
// small inline buffer.
type packetReader struct {
	buf  [smallReadBuffer]byte
	r, w int // buf[r:w] holds bytes read but not yet returned
}

// readPacket returns the first header byte and the body of the next packet.
// The body may alias the reader's buffer: it is valid until the next call.
// maxSize bounds the whole packet (header included) and is checked before
// anything is allocated. A stream ending inside a packet returns
// io.ErrUnexpectedEOF; ending between packets, io.EOF.
func (pr *packetReader) readPacket(src io.Reader, maxSize int) (byte, []byte, error) {
	for {
		avail := pr.buf[pr.r:pr.w]
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
				if total > len(pr.buf) {
					return pr.readLarge(src, avail[0], avail[headerLen:], n)
				}
			}
		}
		if err := pr.fill(src); err != nil {
			return 0, nil, err
		}
	}
}

// fill reads more bytes into the small buffer, compacting it first.
func (pr *packetReader) fill(src io.Reader) error {
	if pr.r > 0 {
		pr.w = copy(pr.buf[:], pr.buf[pr.r:pr.w])
		pr.r = 0
	}
	n, err := src.Read(pr.buf[pr.w:])
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
	return err
}

// readLarge reads a body of n bytes that does not fit the small buffer;
// have are its first bytes, already buffered.
func (pr *packetReader) readLarge(src io.Reader, first byte, have []byte, n int) (byte, []byte, error) {
	body := make([]byte, 0, max(min(n, largeChunk), len(have)))
	body = append(body, have...)
	pr.r, pr.w = 0, 0
	for len(body) < n {
		if len(body) == cap(body) {
			grown := make([]byte, len(body), min(n, 2*cap(body)))
			copy(grown, body)
			body = grown
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
