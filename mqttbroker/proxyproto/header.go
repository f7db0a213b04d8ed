// Package proxyproto reads the PROXY protocol header (versions 1 and 2, as
// HAProxy specifies it: https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt)
// that a load balancer sends ahead of a relayed connection, so that the
// broker learns the device's address instead of the balancer's.
//
// The parser is written here rather than taken from a library
// (github.com/pires/go-proxyproto): the format is small and exactly
// specified, and the listener needs what libraries do not offer — reading
// exactly the header's bytes, so that the connection handed on is still a
// bare *net.TCPConn the broker can park in its idle poller, and telling an
// untrusted peer's header apart without consuming a byte of plain MQTT.
package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net/netip"
	"strconv"
)

// Versions selects the header versions a listener accepts.
type Versions uint8

const (
	V1  Versions = 1 << iota // the human-readable "PROXY TCP4 …\r\n" line
	V2                       // the binary header
	Any = V1 | V2
)

// Header is a parsed PROXY protocol header.
type Header struct {
	Version int // 1 or 2
	// Proxied is false for a v2 LOCAL command (the proxy's own connection,
	// such as a health check), a v1 UNKNOWN line, and address families
	// this package does not use (UNIX, UNSPEC): the receiver then keeps the
	// connection's real endpoints [proxy-protocol 2.1, 2.2].
	Proxied bool
	// Source and Destination are the relayed connection's endpoints, valid
	// when Proxied.
	Source, Destination netip.AddrPort
}

const (
	// v1MaxLen is the longest v1 line, CRLF included [proxy-protocol 2.1].
	v1MaxLen = 107
	// v2HeaderLen is the fixed part of a v2 header.
	v2HeaderLen = 16
	// MaxHeaderLen bounds a v2 header, TLVs included: the spec allows
	// 16+65535 bytes, far more than addresses and the TLVs a balancer sends
	// (ALPN, authority, unique id ≤ 128, SSL details).
	MaxHeaderLen = 2048
)

var v2Signature = []byte("\r\n\r\n\x00\r\nQUIT\n")

var (
	// ErrIncomplete: the bytes so far are the start of a header; more are needed.
	ErrIncomplete = errors.New("proxyproto: incomplete header")
	// ErrNoHeader: the bytes do not start with a PROXY protocol signature.
	ErrNoHeader = errors.New("proxyproto: no PROXY protocol header")
	// ErrVersion: a header of a version the listener does not accept.
	ErrVersion = errors.New("proxyproto: header version not accepted")
	// ErrTooLong: a header longer than the bounds.
	ErrTooLong = errors.New("proxyproto: header too long")
)

// invalid is a malformed header.
func invalid(format string, args ...any) error {
	return fmt.Errorf("proxyproto: invalid header: "+format, args...)
}

// Signature reports whether b starts with a PROXY protocol signature
// (either version): true or false once known, or ErrIncomplete while b is
// a proper prefix of one. Plain MQTT (first byte 0x10) and HTTP (a method
// name) are told apart on their first or second byte.
func Signature(b []byte) (bool, error) {
	for _, sig := range [][]byte{[]byte("PROXY "), v2Signature} {
		n := min(len(b), len(sig))
		if bytes.Equal(b[:n], sig[:n]) {
			if n < len(sig) {
				return false, ErrIncomplete
			}
			return true, nil
		}
	}
	return false, nil
}

// Parse parses the header at the start of b and returns it with its
// length in bytes. It returns ErrIncomplete while b may still become a
// valid header, ErrNoHeader when b does not start with a signature, and
// another error for a malformed or oversized header. It never reads
// beyond the header: the rest of b is the relayed stream.
func Parse(b []byte, accept Versions) (Header, int, error) {
	if len(b) == 0 {
		return Header{}, 0, ErrIncomplete
	}
	switch b[0] {
	case 'P':
		if n := min(len(b), 6); !bytes.Equal(b[:n], []byte("PROXY ")[:n]) {
			return Header{}, 0, ErrNoHeader
		} else if n < 6 {
			return Header{}, 0, ErrIncomplete
		}
		if accept&V1 == 0 {
			return Header{}, 0, ErrVersion
		}
		return parseV1(b)
	case '\r':
		if n := min(len(b), len(v2Signature)); !bytes.Equal(b[:n], v2Signature[:n]) {
			return Header{}, 0, ErrNoHeader
		} else if n < len(v2Signature) {
			return Header{}, 0, ErrIncomplete
		}
		if accept&V2 == 0 {
			return Header{}, 0, ErrVersion
		}
		return parseV2(b)
	}
	return Header{}, 0, ErrNoHeader
}

// parseV1 parses "PROXY <TCP4|TCP6|UNKNOWN> src dst sport dport\r\n".
func parseV1(b []byte) (Header, int, error) {
	end := bytes.Index(b[:min(len(b), v1MaxLen)], []byte("\r\n"))
	if end < 0 {
		if len(b) >= v1MaxLen {
			return Header{}, 0, ErrTooLong // [proxy-protocol 2.1]: no CRLF in 107 bytes
		}
		return Header{}, 0, ErrIncomplete
	}
	n := end + 2
	h := Header{Version: 1}
	fields := bytes.Split(b[len("PROXY "):end], []byte(" "))
	if string(fields[0]) == "UNKNOWN" {
		// The rest of the line is to be ignored [proxy-protocol 2.1].
		return h, n, nil
	}
	if len(fields) != 5 {
		return Header{}, 0, invalid("v1 line has %d fields, want 6", len(fields)+1)
	}
	var want4 bool
	switch string(fields[0]) {
	case "TCP4":
		want4 = true
	case "TCP6":
	default:
		return Header{}, 0, invalid("v1 protocol %q", fields[0])
	}
	var addrs [2]netip.Addr
	var ports [2]uint16
	for i := range 2 {
		a, err := netip.ParseAddr(string(fields[1+i]))
		if err != nil || a.Zone() != "" || a.Is4() != want4 {
			return Header{}, 0, invalid("v1 %s address %q", fields[0], fields[1+i])
		}
		addrs[i] = a
		p, err := parsePort(fields[3+i])
		if err != nil {
			return Header{}, 0, err
		}
		ports[i] = p
	}
	h.Proxied = true
	h.Source = netip.AddrPortFrom(addrs[0].Unmap(), ports[0])
	h.Destination = netip.AddrPortFrom(addrs[1].Unmap(), ports[1])
	return h, n, nil
}

// parsePort parses a v1 port: decimal 0..65535, digits only.
func parsePort(b []byte) (uint16, error) {
	if len(b) == 0 || len(b) > 5 || (len(b) > 1 && b[0] == '0') {
		return 0, invalid("v1 port %q", b)
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, invalid("v1 port %q", b)
		}
	}
	p, err := strconv.ParseUint(string(b), 10, 16)
	if err != nil {
		return 0, invalid("v1 port %q", b)
	}
	return uint16(p), nil
}

// v2 commands, families and TLV types [proxy-protocol 2.2].
const (
	cmdLocal = 0x0
	cmdProxy = 0x1

	famTCP4      = 0x11
	famUDP4      = 0x12
	famTCP6      = 0x21
	famUDP6      = 0x22
	famUnix      = 0x31
	famUnixDgram = 0x32
	famUnspec    = 0x00

	tlvCRC32C = 0x03
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// parseV2 parses a binary header; b starts with the signature.
func parseV2(b []byte) (Header, int, error) {
	if len(b) < v2HeaderLen {
		return Header{}, 0, ErrIncomplete
	}
	if v := b[12] >> 4; v != 2 {
		return Header{}, 0, invalid("v2 version %d", v) // the receiver must only accept 2
	}
	cmd, fam := b[12]&0x0f, b[13]
	n := v2HeaderLen + int(binary.BigEndian.Uint16(b[14:16]))
	if n > MaxHeaderLen {
		return Header{}, 0, ErrTooLong
	}
	if cmd != cmdLocal && cmd != cmdProxy {
		return Header{}, 0, invalid("v2 command %#x", cmd) // receivers must drop it
	}
	var addrLen int
	switch fam {
	case famUnspec:
	case famTCP4, famUDP4:
		addrLen = 12
	case famTCP6, famUDP6:
		addrLen = 36
	case famUnix, famUnixDgram:
		addrLen = 216
	default:
		return Header{}, 0, invalid("v2 family/protocol %#x", fam) // must be rejected
	}
	if len(b) < n {
		return Header{}, 0, ErrIncomplete
	}
	h := Header{Version: 2}
	if cmd == cmdLocal {
		// Health checks and the like: the real endpoints count, the
		// address block (whatever its family) is skipped [proxy-protocol 2.2].
		return h, n, nil
	}
	block := b[v2HeaderLen:n]
	if len(block) < addrLen {
		return Header{}, 0, invalid("v2 address block of %d bytes for family %#x, want %d", len(block), fam, addrLen)
	}
	if err := checkTLVs(b[:n], v2HeaderLen+addrLen); err != nil {
		return Header{}, 0, err
	}
	switch fam {
	case famTCP4, famUDP4:
		h.Proxied = true
		h.Source = netip.AddrPortFrom(netip.AddrFrom4([4]byte(block[0:4])), binary.BigEndian.Uint16(block[8:10]))
		h.Destination = netip.AddrPortFrom(netip.AddrFrom4([4]byte(block[4:8])), binary.BigEndian.Uint16(block[10:12]))
	case famTCP6, famUDP6:
		h.Proxied = true
		h.Source = netip.AddrPortFrom(netip.AddrFrom16([16]byte(block[0:16])).Unmap(), binary.BigEndian.Uint16(block[32:34]))
		h.Destination = netip.AddrPortFrom(netip.AddrFrom16([16]byte(block[16:32])).Unmap(), binary.BigEndian.Uint16(block[34:36]))
	}
	// UNSPEC and UNIX: accepted with the real endpoints, which the spec
	// allows for families the receiver does not implement.
	return h, n, nil
}

// checkTLVs checks that the bytes of header from off on are whole TLVs and
// verifies a CRC32C TLV, which a receiver that supports it MUST
// [proxy-protocol 2.2.3]. Other TLVs are skipped: the broker has no use
// for them.
func checkTLVs(header []byte, off int) error {
	for off < len(header) {
		if len(header)-off < 3 {
			return invalid("v2 TLV header truncated")
		}
		typ, l := header[off], int(binary.BigEndian.Uint16(header[off+1:off+3]))
		val := off + 3
		if val+l > len(header) {
			return invalid("v2 TLV %#x of %d bytes overruns the header", typ, l)
		}
		if typ == tlvCRC32C {
			if l != 4 {
				return invalid("v2 CRC32C TLV of %d bytes", l)
			}
			want := binary.BigEndian.Uint32(header[val : val+4])
			zeroed := append([]byte(nil), header...)
			clear(zeroed[val : val+4])
			if got := crc32.Checksum(zeroed, castagnoli); got != want {
				return invalid("v2 CRC32C %08x, computed %08x", want, got)
			}
		}
		off = val + l
	}
	return nil
}
