package mqttbroker

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// props builds a properties value with the given ids marked present.
func props(fill func(p *properties), ids ...byte) *properties {
	p := &properties{}
	fill(p)
	for _, id := range ids {
		p.set(id)
	}
	return p
}

// v5PacketFixtures are MQTT 5.0 packets and their exact bytes, checked in
// both directions and used as fuzz seeds.
var v5PacketFixtures = []packetFixture{
	{"CONNECT 5.0 minimal", []byte{0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60, 0, 0, 1, 'c'},
		&connectPacket{ProtocolName: "MQTT", ProtocolLevel: 5, CleanSession: true, Keepalive: 60, ClientID: "c"}},
	{"CONNECT 5.0 session expiry, receive maximum, will properties", []byte{0x10, 35, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x0e, 0, 10,
		8, 0x11, 0, 0, 0, 30, 0x21, 0, 5, // properties
		0, 1, 'c',
		5, 0x18, 0, 0, 0, 2, // will properties: will delay 2
		0, 1, 'w', 0, 2, 'b', 'y'},
		&connectPacket{ProtocolName: "MQTT", ProtocolLevel: 5, CleanSession: true, Keepalive: 10, ClientID: "c",
			Props: props(func(p *properties) { p.SessionExpiry, p.ReceiveMaximum = 30, 5 }, propSessionExpiry, propReceiveMaximum),
			Will: &willMessage{Topic: "w", Payload: []byte("by"), QoS: 1,
				Props: props(func(p *properties) { p.WillDelay = 2 }, propWillDelay)}}},
	{"CONNECT 5.0 password without user name", []byte{0x10, 17, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x42, 0, 0, 0, 0, 1, 'c', 0, 1, 'p'},
		&connectPacket{ProtocolName: "MQTT", ProtocolLevel: 5, CleanSession: true, ClientID: "c", HasPassword: true, Password: []byte("p")}},
	{"CONNACK 5.0 assigned id", []byte{0x20, 9, 0, 0, 6, 0x12, 0, 1, 'a', 0x2a, 0},
		&connackPacket{V5: true, Props: props(func(p *properties) { p.AssignedClientID = "a" }, propAssignedClientID, propSharedAvailable)}},
	{"CONNACK 5.0 bad authentication method", []byte{0x20, 3, 0, 0x8c, 0}, &connackPacket{V5: true, ReturnCode: rcBadAuthMethod}},
	{"PUBLISH 5.0 QoS 0 no properties", []byte{0x30, 6, 0, 1, 't', 0, 'h', 'i'}, &publishPacket{V5: true, Topic: "t", Payload: []byte("hi")}},
	{"PUBLISH 5.0 QoS 1 user property, content type", []byte{0x32, 21, 0, 1, 't', 0, 7,
		14, 0x03, 0, 4, 't', 'e', 'x', 't', 0x26, 0, 1, 'k', 0, 1, 'v', 'x'},
		&publishPacket{V5: true, QoS: 1, Topic: "t", ID: 7, Payload: []byte("x"),
			Props: props(func(p *properties) { p.ContentType = "text"; p.User = []userProperty{{"k", "v"}} }, propContentType, propUserProperty)}},
	{"PUBLISH 5.0 topic alias, empty topic", []byte{0x30, 6, 0, 0, 3, 0x23, 0, 1}, &publishPacket{V5: true,
		Payload: []byte{}, Props: props(func(p *properties) { p.TopicAlias = 1 }, propTopicAlias)}},
	{"PUBLISH 5.0 subscription identifiers", []byte{0x30, 9, 0, 1, 't', 4, 0x0b, 7, 0x0b, 42, 'x'}, &publishPacket{V5: true, Topic: "t",
		Payload: []byte("x"), Props: props(func(p *properties) { p.SubscriptionIDs = []uint32{7, 42} }, propSubscriptionID)}},
	{"PUBACK 5.0 short form", []byte{0x40, 2, 0, 1}, &ackPacket{Type: typePuback, ID: 1}},
	{"PUBACK 5.0 reason only", []byte{0x40, 3, 0, 1, 0x10}, &ackPacket{Type: typePuback, ID: 1, Reason: rcNoMatchingSubscribers}},
	{"PUBREC 5.0 reason, reason string", []byte{0x50, 8, 0, 2, 0x80, 4, 0x1f, 0, 1, 'x'},
		&ackPacket{Type: typePubrec, ID: 2, Reason: rcUnspecified, Props: props(func(p *properties) { p.ReasonString = "x" }, propReasonString)}},
	{"PUBREL 5.0 not found", []byte{0x62, 3, 0, 3, 0x92}, &ackPacket{Type: typePubrel, ID: 3, Reason: rcPacketIDNotFound}},
	{"SUBSCRIBE 5.0 options", []byte{0x82, 9, 0, 5, 0, 0, 3, 'a', '/', 'b', 0x2d},
		&subscribePacket{V5: true, ID: 5, Subscriptions: []subscription{{Filter: "a/b", QoS: 1, Options: optNoLocal | optRetainAsPublished | 0x20}}}},
	{"SUBACK 5.0", []byte{0x90, 6, 0, 5, 0, 1, 0x87, 0x9e}, &subackPacket{V5: true, ID: 5, ReturnCodes: []byte{1, rcNotAuthorized, rcSharedNotSupported}}},
	{"UNSUBSCRIBE 5.0", []byte{0xa2, 6, 0, 4, 0, 0, 1, 'a'}, &unsubscribePacket{V5: true, ID: 4, Filters: []string{"a"}}},
	{"UNSUBACK 5.0", []byte{0xb0, 5, 0, 4, 0, 0, 0x11}, &unsubackPacket{ID: 4, ReasonCodes: []byte{0, rcNoSubscriptionExisted}}},
	{"DISCONNECT 5.0 normal", []byte{0xe0, 0}, &disconnectPacket{}},
	{"DISCONNECT 5.0 with will", []byte{0xe0, 1, 0x04}, &disconnectPacket{Reason: rcDisconnectWithWill}},
	{"DISCONNECT 5.0 session expiry", []byte{0xe0, 7, 0, 5, 0x11, 0, 0, 0, 9},
		&disconnectPacket{Props: props(func(p *properties) { p.SessionExpiry = 9 }, propSessionExpiry)}},
	{"AUTH 5.0", []byte{0xf0, 8, 0x18, 6, 0x15, 0, 3, 'x', 'y', 'z'},
		&authPacket{Reason: rcContinueAuthentication, Props: props(func(p *properties) { p.AuthMethod = "xyz" }, propAuthMethod)}},
	{"PINGREQ 5.0", []byte{0xc0, 0}, &emptyPacket{Type: typePingreq}},
}

// v5MalformedFixtures must be rejected by the v5 decoder with the clause.
var v5MalformedFixtures = []malformedFixture{
	{"PUBLISH unknown property 0x04", []byte{0x30, 7, 0, 1, 't', 2, 0x04, 0, 'x'}, "MQTT-2.2.2-2"},
	{"PUBLISH property 0x11 not allowed", []byte{0x30, 9, 0, 1, 't', 5, 0x11, 0, 0, 0, 1}, "MQTT-2.2.2-2"},
	{"PUBLISH content type twice", []byte{0x30, 12, 0, 1, 't', 8, 0x03, 0, 1, 'a', 0x03, 0, 1, 'b'}, "MQTT-2.2.2-2"},
	{"PUBLISH payload format 2", []byte{0x30, 6, 0, 1, 't', 2, 0x01, 2}, "MQTT-2.2.2-2"},
	{"PUBLISH topic alias 0", []byte{0x30, 7, 0, 1, 't', 3, 0x23, 0, 0}, "MQTT-3.3.2-8"},
	{"PUBLISH property length beyond packet", []byte{0x30, 5, 0, 1, 't', 9, 0x01}, "MQTT-2.2.2-1"},
	{"PUBLISH property length not minimal", []byte{0x30, 6, 0, 1, 't', 0x80, 0x00, 'x'}, "MQTT-1.5.5-1"},
	{"PUBLISH truncated property value", []byte{0x30, 6, 0, 1, 't', 2, 0x02, 0}, "MQTT-2.2.3"},
	{"PUBLISH empty topic without alias", []byte{0x30, 3, 0, 0, 0}, "MQTT-4.7.3-1"},
	{"PUBLISH user property without value", []byte{0x30, 8, 0, 1, 't', 4, 0x26, 0, 1, 'k'}, "MQTT-2.2.3"},
	{"PUBACK invalid reason code 0x01", []byte{0x40, 3, 0, 1, 0x01}, "MQTT-2.4"},
	{"PUBREL invalid reason code 0x10", []byte{0x62, 3, 0, 1, 0x10}, "MQTT-2.4"},
	{"PUBACK trailing bytes", []byte{0x40, 5, 0, 1, 0, 0, 9}, "MQTT-2.2.3"},
	{"SUBSCRIBE reserved option bits", []byte{0x82, 7, 0, 1, 0, 0, 1, 'a', 0x40}, "MQTT-3.8.3-5"},
	{"SUBSCRIBE retain handling 3", []byte{0x82, 7, 0, 1, 0, 0, 1, 'a', 0x30}, "MQTT-3.8.3-5"},
	{"SUBSCRIBE QoS 3", []byte{0x82, 7, 0, 1, 0, 0, 1, 'a', 0x03}, "MQTT-3.8.3-5"},
	{"SUBSCRIBE no filters", []byte{0x82, 3, 0, 1, 0}, "MQTT-3.8.3-2"},
	{"SUBSCRIBE two subscription identifiers", []byte{0x82, 11, 0, 1, 4, 0x0b, 1, 0x0b, 2, 0, 1, 'a', 0}, "MQTT-3.8.2.1.2"},
	{"SUBSCRIBE subscription identifier 0", []byte{0x82, 9, 0, 1, 2, 0x0b, 0, 0, 1, 'a', 0}, "MQTT-3.8.2-2"},
	{"DISCONNECT invalid reason code 0x05", []byte{0xe0, 1, 0x05}, "MQTT-2.4"},
	{"DISCONNECT reason string twice", []byte{0xe0, 10, 0, 8, 0x1f, 0, 1, 'a', 0x1f, 0, 1, 'b'}, "MQTT-2.2.2-2"},
	{"DISCONNECT flags 0001", []byte{0xe1, 0}, "MQTT-2.1.3-1"},
	{"CONNECT 5.0 receive maximum 0", []byte{0x10, 17, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 0, 3, 0x21, 0, 0, 0, 1, 'c'}, "MQTT-3.3.2-8"},
	{"CONNECT 5.0 maximum packet size 0", []byte{0x10, 19, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 0, 5, 0x27, 0, 0, 0, 0, 0, 1, 'c'}, "MQTT-3.1.2-24"},
	{"CONNECT 5.0 will delay outside will properties", []byte{0x10, 19, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 0, 5, 0x18, 0, 0, 0, 1, 0, 1, 'c'}, "MQTT-2.2.2-2"},
	{"CONNECT 5.0 session expiry twice", []byte{0x10, 24, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 0, 10, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2, 0, 1, 'c'}, "MQTT-2.2.2-2"},
	{"CONNECT 5.0 truncated properties", []byte{0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 0, 3, 0x21}, "MQTT-2.2.2-1"},
}

// TestV5PacketFixtures: each fixture decodes to its value and encodes back
// to its bytes.
func TestV5PacketFixtures(t *testing.T) {
	for _, fx := range v5PacketFixtures {
		t.Run(fx.name, func(t *testing.T) {
			first, body := fx.wire[0], fx.wire[2:]
			if int(fx.wire[1]) != len(body) {
				t.Fatalf("fixture remaining length %d, body %d bytes", fx.wire[1], len(body))
			}
			got, err := decodePacketV5(first, body)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, fx.value) {
				t.Fatalf("decoded %#v, want %#v", got, fx.value)
			}
			if wire := encodePacket(fx.value); !bytes.Equal(wire, fx.wire) {
				t.Fatalf("encoded % x, want % x", wire, fx.wire)
			}
		})
	}
}

// TestV5MalformedPackets: malformed properties, duplicate properties,
// invalid reason codes and reserved option bits are refused, each citing
// its clause.
func TestV5MalformedPackets(t *testing.T) {
	for _, fx := range v5MalformedFixtures {
		t.Run(fx.name, func(t *testing.T) {
			if int(fx.wire[1]) != len(fx.wire)-2 {
				t.Fatalf("fixture remaining length %d, body %d bytes", fx.wire[1], len(fx.wire)-2)
			}
			p, err := decodePacketV5(fx.wire[0], fx.wire[2:])
			var pe *protocolError
			if !errors.As(err, &pe) {
				t.Fatalf("decoded %#v (err %v), want a protocol error", p, err)
			}
			if pe.Clause != fx.clause {
				t.Fatalf("error %v cites %s, want %s", err, pe.Clause, fx.clause)
			}
		})
	}
}

// TestV3DecoderUnchanged: a 3.1.1 connection still refuses the packets
// that only MQTT 5.0 defines.
func TestV3DecoderUnchanged(t *testing.T) {
	for _, wire := range [][]byte{
		{0xf0, 0},          // AUTH is reserved in 3.1.1
		{0xe0, 1, 0x04},    // DISCONNECT with a reason code
		{0x40, 3, 0, 1, 0}, // PUBACK with a reason code
	} {
		if p, err := decodePacket(wire[0], wire[2:]); !isProtocolError(err) {
			t.Errorf("% x decoded as %#v (err %v) by the 3.1.1 decoder", wire, p, err)
		}
	}
}

// FuzzDecodePacketV5: no input crashes the v5 decoder, and every packet it
// accepts encodes back to bytes that decode to the same packet.
func FuzzDecodePacketV5(f *testing.F) {
	for _, fx := range v5PacketFixtures {
		f.Add(fx.wire)
	}
	for _, fx := range v5MalformedFixtures {
		f.Add(fx.wire)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var pr packetReader
		src := bytes.NewReader(data)
		for {
			first, body, err := pr.readPacket(src, 1<<16)
			if err != nil {
				return
			}
			p, err := decodePacketV5(first, body)
			if err != nil {
				continue
			}
			if cp, ok := p.(*connectPacket); ok && cp.ProtocolLevel != 5 {
				continue // a 3.1.1 CONNECT: FuzzDecodePacket's matter
			}
			wire := encodePacket(p)
			var again packetReader
			first2, body2, err := again.readPacket(bytes.NewReader(wire), 1<<20)
			if err != nil {
				t.Fatalf("re-reading %v: %v", p, err)
			}
			p2, err := decodePacketV5(first2, body2)
			if err != nil {
				t.Fatalf("re-decoding %#v (% x): %v", p, wire, err)
			}
			if !reflect.DeepEqual(p, p2) {
				t.Fatalf("round trip changed %#v into %#v", p, p2)
			}
		}
	})
}

// TestPropertiesSize: the computed size of properties is the size of
// their encoding, for every fixture that has some.
func TestPropertiesSize(t *testing.T) {
	all := props(func(p *properties) {
		p.ContentType, p.ResponseTopic, p.CorrelationData, p.ReasonString = "c", "rt", []byte{1}, "why"
		p.SubscriptionIDs = []uint32{1, 200, 300_000}
		p.User = []userProperty{{"a", "b"}, {"", "long value"}}
		p.AuthMethod, p.AuthData, p.ResponseInfo, p.ServerReference, p.AssignedClientID = "m", []byte("d"), "ri", "sr", "id"
	}, propContentType, propResponseTopic, propCorrelationData, propReasonString, propSubscriptionID, propUserProperty,
		propAuthMethod, propAuthData, propResponseInfo, propServerReference, propAssignedClientID,
		propPayloadFormat, propMessageExpiry, propSessionExpiry, propServerKeepAlive, propReceiveMaximum, propTopicAlias)
	if got, want := all.bodySize(), len(all.appendBody(nil)); got != want {
		t.Fatalf("bodySize %d, encoding %d bytes", got, want)
	}
}
