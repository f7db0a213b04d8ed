package persist

import (
	"encoding/binary"
	"errors"
)

// Field encoding inside a record body: unsigned varints for numbers and
// lengths, raw bytes after a length. Small and endian-free; the decoder
// never trusts a length beyond what is left of the body.

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendString(b []byte, v string) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

var errFieldShort = errors.New("field runs past the end of the record")

// fieldReader reads fields from a body; the first failure sticks, so a
// decoder reads every field and checks err once.
type fieldReader struct {
	buf []byte
	err error
}

func (r *fieldReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.buf = nil
}

func (r *fieldReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.buf)
	if n <= 0 {
		r.fail(errFieldShort)
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

func (r *fieldReader) uint16() uint16 {
	v := r.uvarint()
	if v > 0xFFFF {
		r.fail(errors.New("packet id is over 65535"))
	}
	return uint16(v)
}

func (r *fieldReader) uint32() uint32 {
	v := r.uvarint()
	if v > 0xFFFFFFFF {
		r.fail(errors.New("number is over 32 bits"))
	}
	return uint32(v)
}

// int63 reads a non-negative int64 (a time in Unix nanoseconds).
func (r *fieldReader) int63() int64 {
	v := r.uvarint()
	if v > 1<<63-1 {
		r.fail(errors.New("time is over 63 bits"))
	}
	return int64(v)
}

func (r *fieldReader) byte() byte {
	if len(r.buf) < 1 {
		r.fail(errFieldShort)
		return 0
	}
	v := r.buf[0]
	r.buf = r.buf[1:]
	return v
}

func (r *fieldReader) bool() bool {
	switch r.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	r.fail(errors.New("flag is neither 0 nor 1"))
	return false
}

// bytes returns a copy, so that state loaded from a file does not pin the
// file's read buffer; nil for an empty field.
func (r *fieldReader) bytes() []byte {
	n := r.uvarint()
	if n > uint64(len(r.buf)) {
		r.fail(errFieldShort)
		return nil
	}
	if n == 0 {
		return nil
	}
	v := make([]byte, n)
	copy(v, r.buf)
	r.buf = r.buf[n:]
	return v
}

func (r *fieldReader) string() string {
	n := r.uvarint()
	if n > uint64(len(r.buf)) {
		r.fail(errFieldShort)
		return ""
	}
	v := string(r.buf[:n])
	r.buf = r.buf[n:]
	return v
}
