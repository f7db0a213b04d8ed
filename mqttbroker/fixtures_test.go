package mqttbroker

// packetFixture is one packet and its exact bytes on the wire. The table is
// shared by the codec tests (both directions), the server tests and the
// fuzz seeds.
type packetFixture struct {
	name  string
	wire  []byte
	value packet
}

var packetFixtures = []packetFixture{
	{"CONNECT minimal 3.1.1", []byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 1, 'c'},
		&connectPacket{ProtocolName: "MQTT", ProtocolLevel: 4, CleanSession: true, Keepalive: 60, ClientID: "c"}},
	{"CONNECT 3.1", []byte{0x10, 15, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 0x00, 0, 10, 0, 1, 'c'},
		&connectPacket{ProtocolName: "MQIsdp", ProtocolLevel: 3, Keepalive: 10, ClientID: "c"}},
	{"CONNECT will user password", []byte{0x10, 29, 0, 4, 'M', 'Q', 'T', 'T', 4, 0xf6, 0, 5, 0, 1, 'c',
		0, 3, 'w', '/', 't', 0, 2, 'b', 'y', 0, 1, 'u', 0, 2, 'p', 'w'},
		&connectPacket{ProtocolName: "MQTT", ProtocolLevel: 4, CleanSession: true, Keepalive: 5, ClientID: "c",
			Will:        &willMessage{Topic: "w/t", Payload: []byte("by"), QoS: 2, Retain: true},
			HasUsername: true, Username: "u", HasPassword: true, Password: []byte("pw")}},
	{"CONNACK accepted", []byte{0x20, 2, 0, 0}, &connackPacket{}},
	{"CONNACK session present", []byte{0x20, 2, 1, 0}, &connackPacket{SessionPresent: true}},
	{"CONNACK refused 5", []byte{0x20, 2, 0, 5}, &connackPacket{ReturnCode: 5}},
	{"PUBLISH QoS 0", []byte{0x30, 5, 0, 1, 't', 'h', 'i'}, &publishPacket{Topic: "t", Payload: []byte("hi")}},
	{"PUBLISH QoS 0 empty payload", []byte{0x30, 3, 0, 1, 't'}, &publishPacket{Topic: "t", Payload: []byte{}}},
	{"PUBLISH QoS 1 retain", []byte{0x33, 6, 0, 1, 't', 0, 7, 'x'}, &publishPacket{QoS: 1, Retain: true, Topic: "t", ID: 7, Payload: []byte("x")}},
	{"PUBLISH QoS 2 dup", []byte{0x3c, 5, 0, 1, 't', 1, 0}, &publishPacket{Dup: true, QoS: 2, Topic: "t", ID: 256, Payload: []byte{}}},
	{"PUBACK", []byte{0x40, 2, 0, 1}, &ackPacket{Type: typePuback, ID: 1}},
	{"PUBREC", []byte{0x50, 2, 0xff, 0xff}, &ackPacket{Type: typePubrec, ID: 65535}},
	{"PUBREL", []byte{0x62, 2, 0, 2}, &ackPacket{Type: typePubrel, ID: 2}},
	{"PUBCOMP", []byte{0x70, 2, 0, 3}, &ackPacket{Type: typePubcomp, ID: 3}},
	{"SUBSCRIBE two filters", []byte{0x82, 12, 0, 9, 0, 3, 'a', '/', '+', 1, 0, 1, '#', 2},
		&subscribePacket{ID: 9, Subscriptions: []subscription{{Filter: "a/+", QoS: 1}, {Filter: "#", QoS: 2}}}},
	{"SUBACK", []byte{0x90, 5, 0, 9, 0, 2, 0x80}, &subackPacket{ID: 9, ReturnCodes: []byte{0, 2, 0x80}}},
	{"UNSUBSCRIBE", []byte{0xa2, 5, 0, 4, 0, 1, 'a'}, &unsubscribePacket{ID: 4, Filters: []string{"a"}}},
	{"UNSUBACK", []byte{0xb0, 2, 0, 4}, &ackPacket{Type: typeUnsuback, ID: 4}},
	{"PINGREQ", []byte{0xc0, 0}, &emptyPacket{Type: typePingreq}},
	{"PINGRESP", []byte{0xd0, 0}, &emptyPacket{Type: typePingresp}},
	{"DISCONNECT", []byte{0xe0, 0}, &emptyPacket{Type: typeDisconnect}},
}

// malformedFixture is a packet a receiver must reject: decoding fails with a
// *protocolError citing clause (or a *refusedError for CONNECT refusals).
type malformedFixture struct {
	name   string
	wire   []byte
	clause string
}

var malformedFixtures = []malformedFixture{
	{"reserved type 0", []byte{0x00, 0}, "MQTT-2.2.1"},
	{"reserved type 15", []byte{0xf0, 0}, "MQTT-2.2.1"},
	{"PUBREL flags 0000", []byte{0x60, 2, 0, 1}, "MQTT-2.2.2-2"},
	{"SUBSCRIBE flags 0000", []byte{0x80, 6, 0, 1, 0, 1, 'a', 0}, "MQTT-2.2.2-2"},
	{"UNSUBSCRIBE flags 0000", []byte{0xa0, 5, 0, 1, 0, 1, 'a'}, "MQTT-2.2.2-2"},
	{"PINGREQ flags 0001", []byte{0xc1, 0}, "MQTT-2.2.2-2"},
	{"DISCONNECT flags 1000", []byte{0xe8, 0}, "MQTT-2.2.2-2"},
	{"CONNECT flags 0010", []byte{0x12, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 1, 'c'}, "MQTT-2.2.2-2"},
	{"PUBLISH QoS 3", []byte{0x36, 5, 0, 1, 't', 0, 1}, "MQTT-3.3.1-4"},
	{"PUBLISH DUP with QoS 0", []byte{0x38, 3, 0, 1, 't'}, "MQTT-3.3.1-2"},
	{"PUBLISH empty topic", []byte{0x30, 2, 0, 0}, "MQTT-4.7.3-1"},
	{"PUBLISH wildcard +", []byte{0x30, 5, 0, 3, 'a', '/', '+'}, "MQTT-3.3.2-2"},
	{"PUBLISH wildcard #", []byte{0x30, 3, 0, 1, '#'}, "MQTT-3.3.2-2"},
	{"PUBLISH packet id 0", []byte{0x32, 5, 0, 1, 't', 0, 0}, "MQTT-2.3.1-1"},
	{"PUBLISH invalid UTF-8 topic", []byte{0x30, 4, 0, 2, 0xc3, 0x28}, "MQTT-1.5.3-1"},
	{"PUBLISH surrogate in topic", []byte{0x30, 5, 0, 3, 0xed, 0xa0, 0x80}, "MQTT-1.5.3-1"},
	{"PUBLISH U+0000 in topic", []byte{0x30, 4, 0, 2, 'a', 0}, "MQTT-1.5.3-2"},
	{"PUBLISH topic longer than body", []byte{0x30, 3, 0, 5, 'a'}, "MQTT-2.2.3"},
	{"PUBACK 3 bytes", []byte{0x40, 3, 0, 1, 0}, "MQTT-2.2.3"},
	{"PUBACK id 0", []byte{0x40, 2, 0, 0}, "MQTT-2.3.1-1"},
	{"PINGREQ with a body", []byte{0xc0, 1, 0}, "MQTT-2.2.3"},
	{"SUBSCRIBE no filters", []byte{0x82, 2, 0, 1}, "MQTT-3.8.3-3"},
	{"SUBSCRIBE QoS 3", []byte{0x82, 6, 0, 1, 0, 1, 'a', 3}, "MQTT-3-8.3-4"},
	{"SUBSCRIBE reserved QoS bits", []byte{0x82, 6, 0, 1, 0, 1, 'a', 0x40}, "MQTT-3-8.3-4"},
	{"SUBSCRIBE id 0", []byte{0x82, 6, 0, 0, 0, 1, 'a', 0}, "MQTT-2.3.1-1"},
	{"SUBSCRIBE empty filter", []byte{0x82, 5, 0, 1, 0, 0, 0}, "MQTT-4.7.3-1"},
	{"SUBSCRIBE # not last", []byte{0x82, 8, 0, 1, 0, 3, '#', '/', 'a', 0}, "MQTT-4.7.1-2"},
	{"SUBSCRIBE a#", []byte{0x82, 7, 0, 1, 0, 2, 'a', '#', 0}, "MQTT-4.7.1-2"},
	{"SUBSCRIBE a+", []byte{0x82, 7, 0, 1, 0, 2, 'a', '+', 0}, "MQTT-4.7.1-3"},
	{"SUBSCRIBE filter without QoS", []byte{0x82, 5, 0, 1, 0, 1, 'a'}, "MQTT-2.2.3"},
	{"UNSUBSCRIBE no filters", []byte{0xa2, 2, 0, 1}, "MQTT-3.10.3-2"},
	{"SUBACK bad code", []byte{0x90, 3, 0, 1, 3}, "MQTT-3.9.3-2"},
	{"CONNACK reserved flags", []byte{0x20, 2, 2, 0}, "MQTT-3.2.2.1"},
	{"CONNECT reserved flag", []byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x03, 0, 60, 0, 1, 'c'}, "MQTT-3.1.2-3"},
	{"CONNECT will QoS without will", []byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x0a, 0, 60, 0, 1, 'c'}, "MQTT-3.1.2-13"},
	{"CONNECT will retain without will", []byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x22, 0, 60, 0, 1, 'c'}, "MQTT-3.1.2-15"},
	{"CONNECT will QoS 3", []byte{0x10, 18, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x1e, 0, 60, 0, 1, 'c', 0, 1, 't', 0, 0}, "MQTT-3.1.2-14"},
	{"CONNECT password without user", []byte{0x10, 16, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x42, 0, 60, 0, 1, 'c', 0, 1, 'p'}, "MQTT-3.1.2-22"},
	{"CONNECT trailing bytes", []byte{0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 1, 'c', 9}, "MQTT-3.1.3-1"},
	{"CONNECT invalid UTF-8 id", []byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 1, 0xff}, "MQTT-1.5.3-1"},
	{"CONNECT U+0000 in id", []byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 1, 0}, "MQTT-1.5.3-2"},
	{"CONNECT U+0000 in user name", []byte{0x10, 16, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x82, 0, 60, 0, 1, 'c', 0, 1, 0}, "MQTT-1.5.3-2"},
	{"CONNECT wildcard will topic", []byte{0x10, 18, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x06, 0, 60, 0, 1, 'c', 0, 1, '#', 0, 0}, "MQTT-3.3.2-2"},
	{"CONNECT truncated", []byte{0x10, 9, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0}, "MQTT-2.2.3"},
	{"CONNECT level 6", []byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 6, 0x02, 0, 60, 0, 1, 'c'}, "MQTT-3.1.2-2"},
}
