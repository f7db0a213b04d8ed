package mqttbroker

import (
	"encoding/binary"
	"strings"
	"unicode/utf8"
)

// fieldReader reads the fields of one packet body in order. Every method
// fails with a *protocolError when the body is too short.
type fieldReader struct {
	b []byte
}

func (r *fieldReader) byte() (byte, error) {
	if len(r.b) < 1 {
		return 0, errTruncated
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v, nil
}

func (r *fieldReader) uint16() (uint16, error) {
	if len(r.b) < 2 {
		return 0, errTruncated
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v, nil
}

// packetID reads a Packet Identifier, which must be non-zero [MQTT-2.3.1-1].
func (r *fieldReader) packetID() (uint16, error) {
	id, err := r.uint16()
	if err == nil && id == 0 {
		err = malformed("MQTT-2.3.1-1", "packet identifier 0")
	}
	return id, err
}

// binary reads length-prefixed binary data [MQTT-1.5.3]; the result aliases
// the body.
func (r *fieldReader) binary() ([]byte, error) {
	n, err := r.uint16()
	if err != nil {
		return nil, err
	}
	if len(r.b) < int(n) {
		return nil, errTruncated
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v, nil
}

// string reads a UTF-8 encoded string [MQTT-1.5.3]: ill-formed UTF-8
// [MQTT-1.5.3-1] and U+0000 [MQTT-1.5.3-2] make the packet malformed.
func (r *fieldReader) string(field string) (string, error) {
	b, err := r.binary()
	if err != nil {
		return "", err
	}
	if err := checkUTF8(field, b); err != nil {
		return "", err
	}
	return string(b), nil
}

// checkUTF8 applies the rules of [MQTT-1.5.3-1] and [MQTT-1.5.3-2]. Go's
// decoder also rejects the surrogates U+D800..U+DFFF the spec forbids.
func checkUTF8(field string, b []byte) error {
	if !utf8.Valid(b) {
		return malformed("MQTT-1.5.3-1", "%s is not well-formed UTF-8", field)
	}
	for _, c := range b {
		if c == 0 {
			return malformed("MQTT-1.5.3-2", "%s contains U+0000", field)
		}
	}
	return nil
}

// empty reports whether the whole body was consumed.
func (r *fieldReader) empty() bool { return len(r.b) == 0 }

// rest returns the unread bytes.
func (r *fieldReader) rest() []byte { return r.b }

func appendUint16(dst []byte, v uint16) []byte { return append(dst, byte(v>>8), byte(v)) }

func appendString(dst []byte, s string) []byte {
	dst = appendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

func appendBinary(dst []byte, b []byte) []byte {
	dst = appendUint16(dst, uint16(len(b)))
	return append(dst, b...)
}

// cloneBytes copies b so a decoded packet never aliases a read buffer. A
// non-nil empty slice is kept non-nil so "empty" and "absent" stay distinct.
func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

// hasWildcard reports whether a topic contains '+' or '#'.
func hasWildcard(topic string) bool { return strings.ContainsAny(topic, "+#") }
