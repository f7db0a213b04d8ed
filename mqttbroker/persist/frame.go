package persist

import "github.com/presenced/presenced/presence/durable"

// Records are framed as the event outbox's are (presence/durable: length
// and CRC-32C; the body is a kind byte, then the fields of that kind,
// record.go).
const (
	frameHeaderBytes = durable.HeaderBytes
	// maxBodyBytes bounds one record: a message is at most the broker's
	// maximum packet size (256 MiB by the protocol, far less by its
	// config), plus a client id and a few numbers.
	maxBodyBytes = 1<<28 + 1<<20
)

// appendFrame frames body onto buf.
func appendFrame(buf, body []byte) []byte { return durable.AppendFrame(buf, body) }

// parseFrame reads one frame from the start of buf. It returns the body
// (aliasing buf) and the frame's size, or why the bytes are not a whole,
// valid frame.
func parseFrame(buf []byte) (body []byte, size int, why string) {
	_, body, size, why = durable.ParseFrame(buf, maxBodyBytes)
	return body, size, why
}
