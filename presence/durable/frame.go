package durable

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Framing of one record on disk:
//
//	uint32 LE  body length n, 1..the log's maximum
//	uint32 LE  CRC-32C over the 4 length bytes and the body
//	n bytes    body
//
// The CRC covers the length too, so a flipped length byte is caught instead
// of sending the reader into the middle of another record.
const HeaderBytes = 8

// Castagnoli is the CRC-32C table of the frames (and of the logs' other
// checksummed files).
var Castagnoli = crc32.MakeTable(crc32.Castagnoli)

// BeginFrame starts a frame at the end of buf: the caller appends the body
// to the buffer returned, then calls EndFrame with start. Bodies are written
// in place, with no copy.
func BeginFrame(buf []byte) (_ []byte, start int) {
	return append(buf, 0, 0, 0, 0, 0, 0, 0, 0), len(buf)
}

// EndFrame fills in the header of the frame begun at start: the body is
// everything after it.
func EndFrame(buf []byte, start int) []byte {
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(buf)-start-HeaderBytes))
	crc := crc32.Update(0, Castagnoli, buf[start:start+4])
	crc = crc32.Update(crc, Castagnoli, buf[start+HeaderBytes:])
	binary.LittleEndian.PutUint32(buf[start+4:], crc)
	return buf
}

// AppendFrame frames body onto buf.
func AppendFrame(buf, body []byte) []byte {
	buf, start := BeginFrame(buf)
	return EndFrame(append(buf, body...), start)
}

// Parsed says what ParseFrame found at the start of a buffer.
type Parsed int

const (
	Whole Parsed = iota // a complete, valid frame
	Short               // the buffer ends inside the frame (maybe torn)
	Bad                 // the bytes are not a valid frame
)

// ParseFrame reads one frame from the start of buf, whose bodies are at most
// maxBody bytes. On Whole it returns the body (aliasing buf) and the frame's
// size; otherwise why says what is wrong.
func ParseFrame(buf []byte, maxBody int) (res Parsed, body []byte, size int, why string) {
	if len(buf) < HeaderBytes {
		return Short, nil, 0, "record header is cut short"
	}
	n := binary.LittleEndian.Uint32(buf)
	if n == 0 || int64(n) > int64(maxBody) {
		return Bad, nil, 0, fmt.Sprintf("record length %d is outside 1..%d", n, maxBody)
	}
	size = HeaderBytes + int(n)
	if len(buf) < size {
		return Short, nil, 0, fmt.Sprintf("record of %d bytes is cut short at %d", size, len(buf))
	}
	want := binary.LittleEndian.Uint32(buf[4:])
	crc := crc32.Update(0, Castagnoli, buf[:4])
	crc = crc32.Update(crc, Castagnoli, buf[HeaderBytes:size])
	if crc != want {
		return Bad, nil, 0, fmt.Sprintf("record checksum is %08x, want %08x", crc, want)
	}
	return Whole, buf[HeaderBytes:size], size, ""
}
