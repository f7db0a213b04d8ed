package outbox

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"

	"github.com/presenced/presenced/presence"
)

// Kind says what a record's payload is. It is the first byte of every
// record body, so one outbox carries lifecycle and node events in one order
// and new kinds can be added without changing the framing.
type Kind byte

const (
	// KindEvent: the payload is a presence.Event in the wire JSON.
	KindEvent Kind = 1
	// KindNode: the payload is a presence.NodeEvent in JSON.
	KindNode Kind = 2
)

func (k Kind) String() string {
	switch k {
	case KindEvent:
		return "event"
	case KindNode:
		return "node"
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

// Framing of one record on disk:
//
//	uint32 LE  body length n (kind byte + payload), 1..maxBodyBytes
//	uint32 LE  CRC-32C over the 4 length bytes and the body
//	n bytes    body: kind byte, then the JSON payload
//
// The CRC covers the length too, so a flipped length byte is caught instead
// of sending the reader into the middle of another record.
const (
	recordHeaderBytes = 8
	// maxBodyBytes bounds one record: an event is at most
	// presence.MaxEventBytes; node events listing every channel of a large
	// node are bigger, so leave generous room.
	maxBodyBytes = 4 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Record is one entry read from the outbox.
type Record struct {
	// Seq numbers records from 1 in append order; Ack takes it.
	Seq     uint64
	Kind    Kind
	Payload []byte // JSON; owned by the caller
}

// Event decodes a KindEvent record. It validates like any other source, so
// a record written by an older broker with looser rules is reported, not
// forwarded blindly.
func (r Record) Event() (presence.Event, error) {
	if r.Kind != KindEvent {
		return presence.Event{}, fmt.Errorf("decode outbox record %d: kind is %s, not event", r.Seq, r.Kind)
	}
	return presence.DecodeEvent(r.Payload)
}

// NodeEvent decodes a KindNode record.
func (r Record) NodeEvent() (presence.NodeEvent, error) {
	var ne presence.NodeEvent
	if r.Kind != KindNode {
		return ne, fmt.Errorf("decode outbox record %d: kind is %s, not node", r.Seq, r.Kind)
	}
	if err := json.Unmarshal(r.Payload, &ne); err != nil {
		return ne, fmt.Errorf("decode outbox record %d: %w", r.Seq, err)
	}
	return ne, nil
}

// appendRecord frames kind+payload onto buf.
func appendRecord(buf []byte, kind Kind, payload []byte) []byte {
	start := len(buf)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(1+len(payload)))
	buf = append(buf, 0, 0, 0, 0) // CRC, filled below
	buf = append(buf, byte(kind))
	buf = append(buf, payload...)
	crc := crc32.Update(0, castagnoli, buf[start:start+4])
	crc = crc32.Update(crc, castagnoli, buf[start+recordHeaderBytes:])
	binary.LittleEndian.PutUint32(buf[start+4:], crc)
	return buf
}

// parseResult says what parseRecord found at the start of a buffer.
type parseResult int

const (
	parsedRecord parseResult = iota // a complete, valid record
	parsedShort                     // the buffer ends inside the record
	parsedBad                       // the bytes are not a valid record
)

// parseRecord reads one record from the start of buf. On parsedRecord it
// returns the kind, the payload (aliasing buf) and the record's total size.
// On parsedBad, why says what is wrong.
func parseRecord(buf []byte) (res parseResult, kind Kind, payload []byte, size int, why string) {
	if len(buf) < recordHeaderBytes {
		return parsedShort, 0, nil, 0, "record header is cut short"
	}
	n := binary.LittleEndian.Uint32(buf)
	if n == 0 || n > maxBodyBytes {
		return parsedBad, 0, nil, 0, fmt.Sprintf("record length %d is outside 1..%d", n, maxBodyBytes)
	}
	size = recordHeaderBytes + int(n)
	if len(buf) < size {
		return parsedShort, 0, nil, 0, fmt.Sprintf("record of %d bytes is cut short at %d", size, len(buf))
	}
	want := binary.LittleEndian.Uint32(buf[4:])
	crc := crc32.Update(0, castagnoli, buf[:4])
	crc = crc32.Update(crc, castagnoli, buf[recordHeaderBytes:size])
	if crc != want {
		return parsedBad, 0, nil, 0, fmt.Sprintf("record checksum is %08x, want %08x", crc, want)
	}
	// An unknown kind with a valid checksum is not corruption: a newer
	// version wrote it. It is returned, and the reader decides.
	return parsedRecord, Kind(buf[recordHeaderBytes]), buf[recordHeaderBytes+1 : size], size, ""
}
