package mqttbroker

import "fmt"

// CONNACK return codes [MQTT-3.2.2.3].
const (
	connAccepted           byte = 0x00
	connRefusedProtocol    byte = 0x01 // unacceptable protocol level (or name)
	connRefusedIdentifier  byte = 0x02 // identifier rejected
	connRefusedUnavailable byte = 0x03 // server unavailable
	connRefusedBadAuth     byte = 0x04 // bad user name or password
	connRefusedNotAuth     byte = 0x05 // not authorized
)

// Connect flag bits [MQTT-3.1.2.3].
const (
	flagReserved     = 0x01
	flagCleanSession = 0x02
	flagWill         = 0x04
	flagWillQoS      = 0x18
	flagWillRetain   = 0x20
	flagPassword     = 0x40
	flagUsername     = 0x80
)

// connectPacket is CONNECT [MQTT-3.1].
type connectPacket struct {
	ProtocolName  string // "MQTT" (5.0, 3.1.1) or "MQIsdp" (3.1)
	ProtocolLevel byte   // 5 (5.0), 4 (3.1.1) or 3 (3.1)
	CleanSession  bool   // Clean Start in MQTT 5.0
	Keepalive     uint16 // seconds; 0 disables keepalive
	ClientID      string
	Will          *willMessage // nil when the Will Flag is 0
	HasUsername   bool
	Username      string
	HasPassword   bool
	Password      []byte
	Props         *properties // MQTT 5.0 only
}

// willMessage is the Will of a CONNECT [MQTT-3.1.2.5].
type willMessage struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	Props   *properties // MQTT 5.0 Will Properties
}

func (p *connectPacket) kind() packetType { return typeConnect }

// String describes the packet for logs without the password.
func (p *connectPacket) String() string {
	return fmt.Sprintf("CONNECT %s/%d client=%q user=%q clean=%t keepalive=%d will=%t password=%t",
		p.ProtocolName, p.ProtocolLevel, p.ClientID, p.Username, p.CleanSession, p.Keepalive, p.Will != nil, p.HasPassword)
}

// refusedError makes the server answer CONNECT with a CONNACK carrying Code
// and then close the connection.
type refusedError struct {
	Code   byte
	Clause string
	Reason string
	// ClientID is the client id of a CONNECT refused before it was
	// decoded, when it could be read anyway (see unsupportedClientID).
	ClientID string
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("connect refused with code %d: %s [%s]", e.Code, e.Reason, e.Clause)
}

// supportedProtocol reports whether name and level are MQTT 5.0, 3.1.1 or
// 3.1.
func supportedProtocol(name string, level byte) bool {
	return name == "MQTT" && (level == 4 || level == 5) || name == "MQIsdp" && level == 3
}

func decodeConnect(body []byte) (packet, error) {
	r := fieldReader{b: body}
	p := &connectPacket{}
	var err error
	if p.ProtocolName, err = r.string("protocol name"); err != nil {
		return nil, err
	}
	if p.ProtocolLevel, err = r.byte(); err != nil {
		return nil, err
	}
	if !supportedProtocol(p.ProtocolName, p.ProtocolLevel) {
		// [MQTT-3.1.2-2] unsupported level: CONNACK 0x01, then disconnect.
		// [MQTT-3.1.2-1] a wrong name must not be processed as 3.1.1; the
		// rest may follow another specification, so it is not parsed.
		return nil, &refusedError{Code: connRefusedProtocol, Clause: "MQTT-3.1.2-2",
			Reason:   fmt.Sprintf("protocol %q level %d", p.ProtocolName, p.ProtocolLevel),
			ClientID: unsupportedClientID(p.ProtocolName, p.ProtocolLevel, r)}
	}
	flags, err := r.byte()
	if err != nil {
		return nil, err
	}
	if flags&flagReserved != 0 {
		return nil, malformed("MQTT-3.1.2-3", "reserved connect flag set")
	}
	p.CleanSession = flags&flagCleanSession != 0
	willQoS := flags & flagWillQoS >> 3
	hasWill := flags&flagWill != 0
	switch {
	case !hasWill && willQoS != 0:
		return nil, malformed("MQTT-3.1.2-13", "will QoS %d without will flag", willQoS)
	case !hasWill && flags&flagWillRetain != 0:
		return nil, malformed("MQTT-3.1.2-15", "will retain without will flag")
	case willQoS == 3:
		return nil, malformed("MQTT-3.1.2-14", "will QoS 3")
	case flags&flagUsername == 0 && flags&flagPassword != 0 && p.ProtocolLevel != 5:
		// MQTT 5.0 allows a password without a user name.
		return nil, malformed("MQTT-3.1.2-22", "password flag without user name flag")
	}
	if p.Keepalive, err = r.uint16(); err != nil {
		return nil, err
	}
	if p.ProtocolLevel == 5 {
		if p.Props, err = decodeProperties(&r, typeConnect); err != nil { // [MQTT-3.1.2.11]
			return nil, err
		}
	}
	// [MQTT-3.1.3-1] payload fields in order: client id, will topic, will
	// message, user name, password.
	if p.ClientID, err = r.string("client identifier"); err != nil { // [MQTT-3.1.3-4]
		return nil, err
	}
	if hasWill {
		w := &willMessage{QoS: willQoS, Retain: flags&flagWillRetain != 0}
		if p.ProtocolLevel == 5 {
			if w.Props, err = decodeProperties(&r, typeWill); err != nil { // [MQTT-3.1.3.2]
				return nil, err
			}
		}
		if w.Topic, err = r.string("will topic"); err != nil {
			return nil, err
		}
		if err := checkTopicName(w.Topic); err != nil {
			return nil, err
		}
		payload, err := r.binary()
		if err != nil {
			return nil, err
		}
		w.Payload = cloneBytes(payload)
		p.Will = w
	}
	if flags&flagUsername != 0 {
		p.HasUsername = true
		if p.Username, err = r.string("user name"); err != nil { // [MQTT-3.1.3-11]
			return nil, err
		}
	}
	if flags&flagPassword != 0 {
		p.HasPassword = true
		pw, err := r.binary()
		if err != nil {
			return nil, err
		}
		p.Password = cloneBytes(pw)
	}
	if !r.empty() {
		return nil, malformed("MQTT-3.1.3-1", "%d bytes after the last connect field", len(r.rest()))
	}
	return p, nil
}

func (p *connectPacket) appendTo(dst []byte) []byte {
	var flags byte
	n := 2 + len(p.ProtocolName) + 1 + 1 + 2 + 2 + len(p.ClientID)
	if p.CleanSession {
		flags |= flagCleanSession
	}
	if p.Will != nil {
		flags |= flagWill | p.Will.QoS<<3
		if p.Will.Retain {
			flags |= flagWillRetain
		}
		n += 2 + len(p.Will.Topic) + 2 + len(p.Will.Payload)
		if p.ProtocolLevel == 5 {
			n += propertiesSize(p.Will.Props)
		}
	}
	if p.ProtocolLevel == 5 {
		n += propertiesSize(p.Props)
	}
	if p.HasUsername {
		flags |= flagUsername
		n += 2 + len(p.Username)
	}
	if p.HasPassword {
		flags |= flagPassword
		n += 2 + len(p.Password)
	}
	dst = appendHeader(dst, typeConnect, 0, n)
	dst = appendString(dst, p.ProtocolName)
	dst = append(dst, p.ProtocolLevel, flags)
	dst = appendUint16(dst, p.Keepalive)
	if p.ProtocolLevel == 5 {
		dst = appendProperties(dst, p.Props)
	}
	dst = appendString(dst, p.ClientID)
	if p.Will != nil {
		if p.ProtocolLevel == 5 {
			dst = appendProperties(dst, p.Will.Props)
		}
		dst = appendString(dst, p.Will.Topic)
		dst = appendBinary(dst, p.Will.Payload)
	}
	if p.HasUsername {
		dst = appendString(dst, p.Username)
	}
	if p.HasPassword {
		dst = appendBinary(dst, p.Password)
	}
	return dst
}

// unsupportedClientID reads, for the record of refused connects only, the
// client id of a CONNECT of a protocol level this broker does not speak,
// assuming the 3.1.1 layout (flags, keepalive, client id). Anything that
// does not parse gives "" — it is never processed further [MQTT-3.1.2-1].
func unsupportedClientID(name string, level byte, r fieldReader) string {
	if name != "MQTT" {
		return ""
	}
	if _, err := r.byte(); err != nil { // flags
		return ""
	}
	if _, err := r.uint16(); err != nil { // keepalive
		return ""
	}
	id, err := r.string("client identifier")
	if err != nil {
		return ""
	}
	return id
}
