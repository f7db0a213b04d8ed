package mqttbroker

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

func TestPacketFixturesDecode(t *testing.T) {
	for _, f := range packetFixtures {
		t.Run(f.name, func(t *testing.T) {
			var pr packetReader
			first, body, err := pr.readPacket(bytes.NewReader(f.wire), 1<<20)
			if err != nil {
				t.Fatalf("readPacket: %v", err)
			}
			got, err := decodePacket(first, body)
			if err != nil {
				t.Fatalf("decodePacket: %v", err)
			}
			if !reflect.DeepEqual(got, f.value) {
				t.Fatalf("decoded %#v, want %#v", got, f.value)
			}
		})
	}
}

func TestPacketFixturesEncode(t *testing.T) {
	for _, f := range packetFixtures {
		t.Run(f.name, func(t *testing.T) {
			if got := encodePacket(f.value); !bytes.Equal(got, f.wire) {
				t.Fatalf("encoded % x, want % x", got, f.wire)
			}
		})
	}
}

func TestMalformedFixtures(t *testing.T) {
	for _, f := range malformedFixtures {
		t.Run(f.name, func(t *testing.T) {
			var pr packetReader
			first, body, err := pr.readPacket(bytes.NewReader(f.wire), 1<<20)
			if err == nil {
				_, err = decodePacket(first, body)
			}
			var pe *protocolError
			var re *refusedError
			switch {
			case errors.As(err, &pe):
				if pe.Clause != f.clause {
					t.Fatalf("error %v cites %s, want %s", err, pe.Clause, f.clause)
				}
			case errors.As(err, &re):
				if re.Clause != f.clause {
					t.Fatalf("refusal %v cites %s, want %s", err, re.Clause, f.clause)
				}
			default:
				t.Fatalf("got %v, want a protocol error citing %s", err, f.clause)
			}
		})
	}
}

func TestRemainingLength(t *testing.T) {
	tests := []struct {
		value int
		wire  []byte
	}{
		{0, []byte{0x00}},
		{127, []byte{0x7f}},
		{128, []byte{0x80, 0x01}},
		{16_383, []byte{0xff, 0x7f}},
		{16_384, []byte{0x80, 0x80, 0x01}},
		{2_097_151, []byte{0xff, 0xff, 0x7f}},
		{2_097_152, []byte{0x80, 0x80, 0x80, 0x01}},
		{maxRemainingLength, []byte{0xff, 0xff, 0xff, 0x7f}},
	}
	for _, tt := range tests {
		if got := appendRemainingLength(nil, tt.value); !bytes.Equal(got, tt.wire) {
			t.Errorf("encode %d = % x, want % x", tt.value, got, tt.wire)
		}
		if n := remainingLengthSize(tt.value); n != len(tt.wire) {
			t.Errorf("size %d = %d, want %d", tt.value, n, len(tt.wire))
		}
		v, used, err := decodeRemainingLength(tt.wire)
		if err != nil || v != tt.value || used != len(tt.wire) {
			t.Errorf("decode % x = %d, %d, %v", tt.wire, v, used, err)
		}
	}
	// [MQTT-2.2.3] at most four bytes.
	if _, _, err := decodeRemainingLength([]byte{0xff, 0xff, 0xff, 0xff, 0x7f}); !isProtocolError(err) {
		t.Fatalf("5-byte remaining length: %v", err)
	}
	if _, used, err := decodeRemainingLength([]byte{0x80, 0x80}); used != 0 || err != nil {
		t.Fatalf("incomplete remaining length: used %d, %v", used, err)
	}
}

func TestPacketReaderStreams(t *testing.T) {
	// All fixtures back to back, read one byte at a time, come out whole.
	var stream []byte
	for _, f := range packetFixtures {
		stream = append(stream, f.wire...)
	}
	big := encodePacket(&publishPacket{Topic: "big", Payload: bytes.Repeat([]byte("x"), 10_000)})
	stream = append(stream, big...)
	var pr packetReader
	src := iotest.OneByteReader(bytes.NewReader(stream))
	for _, f := range packetFixtures {
		first, body, err := pr.readPacket(src, 1<<20)
		if err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		if got := append([]byte{first}, appendRemainingLength(nil, len(body))...); !bytes.Equal(append(got, body...), f.wire) {
			t.Fatalf("%s: read % x", f.name, append(got, body...))
		}
	}
	if _, body, err := pr.readPacket(src, 1<<20); err != nil || len(body) != len(big)-3 {
		t.Fatalf("big packet: %d bytes, %v", len(body), err)
	}
	if _, _, err := pr.readPacket(src, 1<<20); err != io.EOF {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}
}

func TestPacketReaderLimits(t *testing.T) {
	tests := []struct {
		name string
		wire []byte
		want error
	}{
		{"too large before allocating", []byte{0x30, 0xff, 0xff, 0xff, 0x7f}, errPacketTooLarge},
		{"5-byte remaining length", []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}, nil},
		{"truncated body", []byte{0x30, 10, 0, 1}, io.ErrUnexpectedEOF},
		{"truncated large body", append([]byte{0x30, 0x80, 0x08}, make([]byte, 300)...), io.ErrUnexpectedEOF},
		{"truncated header", []byte{0x30, 0x80}, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pr packetReader
			_, _, err := pr.readPacket(bytes.NewReader(tt.wire), 1<<16)
			if tt.want == nil {
				if !isProtocolError(err) {
					t.Fatalf("got %v, want a protocol error", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestConnectStringHidesPassword(t *testing.T) {
	p := &connectPacket{ClientID: "c", HasUsername: true, Username: "u", HasPassword: true, Password: []byte("s3cret")}
	if s := p.String(); strings.Contains(s, "s3cret") {
		t.Fatalf("String() = %q reveals the password", s)
	}
}

func TestTopicMatches(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"a/+", "a", false},
		{"a/+", "a/", true},
		{"+/+", "/a", true},
		{"+", "/a", false},
		{"a/#", "a", true}, // [MQTT-4.7.1-2] '#' includes the parent level
		{"a/#", "a/b/c", true},
		{"#", "a/b", true},
		{"#", "$SYS/x", false}, // [MQTT-4.7.2-1]
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"$SYS/+", "$SYS/x", true},
		{"a/+/c", "a/b/c", true},
		{"a/+/c", "a/b/d", false},
		{"/", "/", true},
		{"a//b", "a//b", true},
		{"a/+/b", "a//b", true},
	}
	for _, tt := range tests {
		if got := topicMatches(tt.filter, tt.topic); got != tt.want {
			t.Errorf("topicMatches(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
		// The subscription tree and the retained store agree with it.
		var tree subscriptionTree
		tree.init()
		sess := &session{}
		tree.add(tt.filter, sess, 1)
		var hit bool
		tree.match(tt.topic, func(*session, byte) { hit = true })
		if hit != tt.want {
			t.Errorf("tree: filter %q topic %q matched = %v, want %v", tt.filter, tt.topic, hit, tt.want)
		}
		var store retainedStore
		store.init(1, 1<<20)
		store.set(&message{topic: tt.topic, payload: []byte("x")})
		hit = false
		store.match(tt.filter, func(*message) { hit = true })
		if hit != tt.want {
			t.Errorf("retained: filter %q topic %q matched = %v, want %v", tt.filter, tt.topic, hit, tt.want)
		}
	}
}
