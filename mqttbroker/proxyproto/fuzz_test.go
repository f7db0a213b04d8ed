package proxyproto

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParse: Parse never panics, never claims more bytes than it has,
// and a header it accepts parses the same from exactly its own bytes
// (it never depends on what follows).
func FuzzParse(f *testing.F) {
	f.Add([]byte("PROXY TCP4 203.0.113.7 10.0.0.1 52311 1883\r\n\x10\x0c"))
	f.Add([]byte("PROXY TCP6 2001:db8::7 2001:db8::1 1 2\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(v2Header(cmdProxy, famTCP4, ipv4Block("203.0.113.7", "10.0.0.1", 52311, 1883)))
	f.Add(v2Header(cmdProxy, famTCP6, ipv6Block("2001:db8::7", "2001:db8::1", 1, 2), []byte{0x01, 'm', 'q', 't', 't'}))
	f.Add(withCRC(v2Header(cmdProxy, famTCP4, ipv4Block("1.2.3.4", "5.6.7.8", 1, 2))))
	f.Add(v2Header(cmdLocal, famUnspec, nil))
	f.Add([]byte{0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'T'})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := Parse(b, Any)
		if err != nil {
			if n != 0 {
				t.Fatalf("error %v with length %d", err, n)
			}
			return
		}
		if n <= 0 || n > len(b) || n > MaxHeaderLen {
			t.Fatalf("length %d of %d bytes", n, len(b))
		}
		h2, n2, err := Parse(b[:n:n], Any)
		if err != nil || h2 != h || n2 != n {
			t.Fatalf("own bytes parse as %+v, %d, %v; whole as %+v, %d", h2, n2, err, h, n)
		}
		if h.Proxied && (!h.Source.IsValid() || !h.Destination.IsValid()) {
			t.Fatalf("proxied header without addresses: %+v", h)
		}
		if isHeader, err := Signature(b); !isHeader || err != nil {
			t.Fatalf("accepted header without a signature: %q", b[:n])
		}
		// A prefix of a header is incomplete, never accepted or invalid
		// for v2 (whose length is known); v1 needs its CRLF.
		if b[0] == '\r' && n > 1 {
			if _, _, err := Parse(b[:n-1], Any); !errors.Is(err, ErrIncomplete) && !bytes.HasPrefix(b, []byte("PROXY")) {
				t.Fatalf("prefix of a v2 header: %v, want ErrIncomplete", err)
			}
		}
	})
}
