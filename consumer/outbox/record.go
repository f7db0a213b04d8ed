package outbox

import (
	"encoding/json"
	"fmt"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/durable"
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

// A record is framed by presence/durable (length and CRC-32C); its body
// is the kind byte, then the JSON payload.
const (
	recordHeaderBytes = durable.HeaderBytes
	// maxBodyBytes bounds one record: an event is at most
	// presence.MaxEventBytes; node events listing every channel of a large
	// node are bigger, so leave generous room.
	maxBodyBytes = 4 << 20
)

// castagnoli checksums the checkpoint file as the frames are.
var castagnoli = durable.Castagnoli

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
	buf, start := durable.BeginFrame(buf)
	buf = append(buf, byte(kind))
	return durable.EndFrame(append(buf, payload...), start)
}

// parseResult says what parseRecord found at the start of a buffer.
type parseResult = durable.Parsed

const (
	parsedRecord = durable.Whole // a complete, valid record
	parsedShort  = durable.Short // the buffer ends inside the record
	parsedBad    = durable.Bad   // the bytes are not a valid record
)

// parseRecord reads one record from the start of buf. On parsedRecord it
// returns the kind, the payload (aliasing buf) and the record's total size.
// On parsedBad, why says what is wrong.
func parseRecord(buf []byte) (res parseResult, kind Kind, payload []byte, size int, why string) {
	res, body, size, why := durable.ParseFrame(buf, maxBodyBytes)
	if res != durable.Whole {
		return res, 0, nil, 0, why
	}
	// An unknown kind with a valid checksum is not corruption: a newer
	// version wrote it. It is returned, and the reader decides.
	return res, Kind(body[0]), body[1:], size, ""
}
