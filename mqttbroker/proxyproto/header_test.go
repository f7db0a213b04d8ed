package proxyproto

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"net/netip"
	"strings"
	"testing"
)

// v2Header encodes a v2 header: command, family byte, address block and
// TLVs (each type, value).
func v2Header(cmd, fam byte, block []byte, tlvs ...[]byte) []byte {
	b := append([]byte(nil), v2Signature...)
	b = append(b, 0x20|cmd, fam, 0, 0)
	b = append(b, block...)
	for _, t := range tlvs {
		b = append(b, t[0], byte((len(t)-1)>>8), byte(len(t)-1))
		b = append(b, t[1:]...)
	}
	binary.BigEndian.PutUint16(b[14:16], uint16(len(b)-v2HeaderLen))
	return b
}

// withCRC appends a CRC32C TLV with the right checksum.
func withCRC(h []byte) []byte {
	h = append(h, tlvCRC32C, 0, 4, 0, 0, 0, 0)
	binary.BigEndian.PutUint16(h[14:16], uint16(len(h)-v2HeaderLen))
	binary.BigEndian.PutUint32(h[len(h)-4:], crc32.Checksum(h, castagnoli))
	return h
}

func ipv4Block(src, dst string, sport, dport uint16) []byte {
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	b := append(append([]byte(nil), s[:]...), d[:]...)
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, sport), dport)
}

func ipv6Block(src, dst string, sport, dport uint16) []byte {
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	b := append(append([]byte(nil), s[:]...), d[:]...)
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, sport), dport)
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestParse(t *testing.T) {
	mqttConnect := []byte{0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 0}
	tcp4 := v2Header(cmdProxy, famTCP4, ipv4Block("203.0.113.7", "10.0.0.1", 52311, 1883))
	badCRC := withCRC(v2Header(cmdProxy, famTCP4, ipv4Block("203.0.113.7", "10.0.0.1", 52311, 1883)))
	badCRC[len(badCRC)-1] ^= 1
	cases := []struct {
		name    string
		in      []byte
		accept  Versions
		want    Header
		wantErr error // nil: success; errInvalid: any other error
	}{
		{"v1 tcp4", []byte("PROXY TCP4 203.0.113.7 10.0.0.1 52311 1883\r\n"), Any,
			Header{1, true, ap("203.0.113.7:52311"), ap("10.0.0.1:1883")}, nil},
		{"v1 tcp6", []byte("PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n"), V1,
			Header{1, true, ap("[2001:db8::7]:65535"), ap("[2001:db8::1]:0")}, nil},
		{"v1 unknown", []byte("PROXY UNKNOWN\r\n"), Any, Header{Version: 1}, nil},
		{"v1 unknown with junk", []byte("PROXY UNKNOWN whatever 1 2\r\n"), Any, Header{Version: 1}, nil},
		{"v1 longest", []byte("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"), Any, Header{Version: 1}, nil},
		{"v1 too long", []byte("PROXY UNKNOWN " + strings.Repeat("x", 100) + "\r\n"), Any, Header{}, ErrTooLong},
		{"v1 incomplete", []byte("PROXY TCP4 203.0.113.7 10.0"), Any, Header{}, ErrIncomplete},
		{"v1 prefix", []byte("PRO"), Any, Header{}, ErrIncomplete},
		{"v1 not accepted", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), V2, Header{}, ErrVersion},
		{"v1 tcp4 with v6 address", []byte("PROXY TCP4 2001:db8::7 10.0.0.1 1 2\r\n"), Any, Header{}, errInvalid},
		{"v1 tcp6 with v4 address", []byte("PROXY TCP6 1.2.3.4 2001:db8::1 1 2\r\n"), Any, Header{}, errInvalid},
		{"v1 port too big", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"), Any, Header{}, errInvalid},
		{"v1 port leading zero", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"), Any, Header{}, errInvalid},
		{"v1 missing field", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"), Any, Header{}, errInvalid},
		{"v1 double space", []byte("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"), Any, Header{}, errInvalid},
		{"v1 bare LF", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n" + strings.Repeat("x", 80)), Any, Header{}, ErrTooLong},
		{"v1 bad protocol", []byte("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"), Any, Header{}, errInvalid},
		{"v2 tcp4", tcp4, Any, Header{2, true, ap("203.0.113.7:52311"), ap("10.0.0.1:1883")}, nil},
		{"v2 tcp6", v2Header(cmdProxy, famTCP6, ipv6Block("2001:db8::7", "2001:db8::1", 1, 2)), V2,
			Header{2, true, ap("[2001:db8::7]:1"), ap("[2001:db8::1]:2")}, nil},
		{"v2 tcp6 mapped v4", v2Header(cmdProxy, famTCP6, ipv6Block("::ffff:198.51.100.1", "::1", 1, 2)), V2,
			Header{2, true, ap("198.51.100.1:1"), ap("[::1]:2")}, nil},
		{"v2 local", v2Header(cmdLocal, famUnspec, nil), Any, Header{Version: 2}, nil},
		{"v2 local with addresses", v2Header(cmdLocal, famTCP4, ipv4Block("1.2.3.4", "5.6.7.8", 1, 2)), Any, Header{Version: 2}, nil},
		{"v2 unspec proxy", v2Header(cmdProxy, famUnspec, nil), Any, Header{Version: 2}, nil},
		{"v2 unix", v2Header(cmdProxy, famUnix, make([]byte, 216)), Any, Header{Version: 2}, nil},
		{"v2 TLVs", v2Header(cmdProxy, famTCP4, ipv4Block("1.2.3.4", "5.6.7.8", 1, 2), []byte{0x01, 'm', 'q', 't', 't'}, []byte{0x05, 'i', 'd'}, []byte{0x04}),
			Any, Header{2, true, ap("1.2.3.4:1"), ap("5.6.7.8:2")}, nil},
		{"v2 CRC32C", withCRC(v2Header(cmdProxy, famTCP4, ipv4Block("1.2.3.4", "5.6.7.8", 1, 2))), Any,
			Header{2, true, ap("1.2.3.4:1"), ap("5.6.7.8:2")}, nil},
		{"v2 bad CRC32C", badCRC, Any, Header{}, errInvalid},
		{"v2 incomplete", tcp4[:20], Any, Header{}, ErrIncomplete},
		{"v2 incomplete fixed part", tcp4[:14], Any, Header{}, ErrIncomplete},
		{"v2 not accepted", tcp4, V1, Header{}, ErrVersion},
		{"v2 version 1", append(append([]byte(nil), v2Signature...), 0x11, famTCP4, 0, 12), Any, Header{}, errInvalid},
		{"v2 command 2", v2Header(2, famTCP4, ipv4Block("1.2.3.4", "5.6.7.8", 1, 2)), Any, Header{}, errInvalid},
		{"v2 family 0x41", v2Header(cmdProxy, 0x41, make([]byte, 12)), Any, Header{}, errInvalid},
		{"v2 short address block", v2Header(cmdProxy, famTCP6, make([]byte, 12)), Any, Header{}, errInvalid},
		{"v2 oversized", append(append([]byte(nil), v2Signature...), 0x21, famTCP4, 0xff, 0xff), Any, Header{}, ErrTooLong},
		{"bad v2 signature", append([]byte("\r\n\r\n\x00\r\nQUIX\n"), 0x21, 0x11, 0, 0), Any, Header{}, ErrNoHeader},
		{"plain MQTT", mqttConnect, Any, Header{}, ErrNoHeader},
		{"HTTP", []byte("GET /mqtt HTTP/1.1\r\n"), Any, Header{}, ErrNoHeader},
		{"POST", []byte("POST / HTTP/1.1\r\n"), Any, Header{}, ErrNoHeader},
		{"empty", nil, Any, Header{}, ErrIncomplete},
	}
	// A truncated TLV: the header's length covers a TLV header cut short.
	trunc := v2Header(cmdProxy, famTCP4, ipv4Block("1.2.3.4", "5.6.7.8", 1, 2))
	trunc = append(trunc, 0x01, 0)
	binary.BigEndian.PutUint16(trunc[14:16], uint16(len(trunc)-v2HeaderLen))
	overrun := v2Header(cmdProxy, famTCP4, ipv4Block("1.2.3.4", "5.6.7.8", 1, 2))
	overrun = append(overrun, 0x01, 0, 9, 'x')
	binary.BigEndian.PutUint16(overrun[14:16], uint16(len(overrun)-v2HeaderLen))
	cases = append(cases,
		struct {
			name    string
			in      []byte
			accept  Versions
			want    Header
			wantErr error
		}{"v2 truncated TLV header", trunc, Any, Header{}, errInvalid},
		struct {
			name    string
			in      []byte
			accept  Versions
			want    Header
			wantErr error
		}{"v2 TLV overruns", overrun, Any, Header{}, errInvalid})

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// What follows the header is the relayed stream: never consumed.
			in := append(append([]byte(nil), tc.in...), mqttConnect...)
			if tc.wantErr != nil {
				in = tc.in
			}
			h, n, err := Parse(in, tc.accept)
			switch {
			case tc.wantErr == nil:
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if h != tc.want || n != len(tc.in) {
					t.Fatalf("Parse = %+v, %d; want %+v, %d", h, n, tc.want, len(tc.in))
				}
			case tc.wantErr == errInvalid:
				if err == nil || errors.Is(err, ErrIncomplete) || errors.Is(err, ErrNoHeader) {
					t.Fatalf("Parse = %+v, %d, %v; want an invalid-header error", h, n, err)
				}
			default:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Parse = %+v, %d, %v; want %v", h, n, err, tc.wantErr)
				}
			}
		})
	}
}

// errInvalid stands for "any error that is not one of the sentinels".
var errInvalid = errors.New("invalid")

func TestSignature(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    bool
		pending bool
	}{
		{"P", false, true}, {"PROXY", false, true}, {"PROXY ", true, false}, {"PROXY TCP4", true, false},
		{"POST", false, false}, {"PUT", false, false}, {"GET", false, false}, {"\x10\x0c", false, false},
		{"\r\n\r\n", false, true}, {string(v2Signature), true, false}, {"\r\n\r\nX", false, false},
	} {
		got, err := Signature([]byte(tc.in))
		if got != tc.want || errors.Is(err, ErrIncomplete) != tc.pending {
			t.Errorf("Signature(%q) = %v, %v; want %v, pending %v", tc.in, got, err, tc.want, tc.pending)
		}
	}
}
