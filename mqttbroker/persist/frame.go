package persist

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Framing of one record, in the journal and in the snapshot alike (the
// same as the event outbox's):
//
//	uint32 LE  body length n, 1..maxBodyBytes
//	uint32 LE  CRC-32C over the 4 length bytes and the body
//	n bytes    body: kind byte, then the fields of that kind (record.go)
//
// The CRC covers the length too, so a flipped length byte is caught instead
// of sending the reader into the middle of another record.
const (
	frameHeaderBytes = 8
	// maxBodyBytes bounds one record: a message is at most the broker's
	// maximum packet size (256 MiB by the protocol, far less by its
	// config), plus a client id and a few numbers.
	maxBodyBytes = 1<<28 + 1<<20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendFrame frames body onto buf.
func appendFrame(buf, body []byte) []byte {
	start := len(buf)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(body)))
	buf = append(buf, 0, 0, 0, 0)
	buf = append(buf, body...)
	crc := crc32.Update(0, castagnoli, buf[start:start+4])
	crc = crc32.Update(crc, castagnoli, buf[start+frameHeaderBytes:])
	binary.LittleEndian.PutUint32(buf[start+4:], crc)
	return buf
}

// parseFrame reads one frame from the start of buf. It returns the body
// (aliasing buf) and the frame's size, or why the bytes are not a whole,
// valid frame.
func parseFrame(buf []byte) (body []byte, size int, why string) {
	if len(buf) < frameHeaderBytes {
		return nil, 0, "record header is cut short"
	}
	n := binary.LittleEndian.Uint32(buf)
	if n == 0 || n > maxBodyBytes {
		return nil, 0, fmt.Sprintf("record length %d is outside 1..%d", n, maxBodyBytes)
	}
	size = frameHeaderBytes + int(n)
	if len(buf) < size {
		return nil, 0, fmt.Sprintf("record of %d bytes is cut short at %d", size, len(buf))
	}
	want := binary.LittleEndian.Uint32(buf[4:])
	crc := crc32.Update(0, castagnoli, buf[:4])
	crc = crc32.Update(crc, castagnoli, buf[frameHeaderBytes:size])
	if crc != want {
		return nil, 0, fmt.Sprintf("record checksum is %08x, want %08x", crc, want)
	}
	return buf[frameHeaderBytes:size], size, ""
}
