package mqttbroker

import (
	"errors"
	"fmt"
)

// packetType is the MQTT control packet type: the high nibble of the first
// byte of the fixed header [MQTT-2.2.1].
type packetType byte

// The 14 control packets of MQTT 3.1.1; 0 and 15 are reserved.
const (
	typeConnect     packetType = 1
	typeConnack     packetType = 2
	typePublish     packetType = 3
	typePuback      packetType = 4
	typePubrec      packetType = 5
	typePubrel      packetType = 6
	typePubcomp     packetType = 7
	typeSubscribe   packetType = 8
	typeSuback      packetType = 9
	typeUnsubscribe packetType = 10
	typeUnsuback    packetType = 11
	typePingreq     packetType = 12
	typePingresp    packetType = 13
	typeDisconnect  packetType = 14
)

var packetNames = [16]string{"RESERVED0", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL",
	"PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "RESERVED15"}

func (t packetType) String() string { return packetNames[t&0x0f] }

// maxRemainingLength is the largest value four bytes of Remaining Length can
// encode [MQTT-2.2.3].
const maxRemainingLength = 268_435_455

// packet is one decoded MQTT control packet.
type packet interface {
	kind() packetType
	// appendTo appends the complete wire encoding, fixed header included.
	appendTo(dst []byte) []byte
}

// protocolError is a violation of the protocol by the peer. The receiver
// closes the network connection [MQTT-4.8.0-1]; Clause names the rule broken.
type protocolError struct {
	Clause string
	Reason string
	// Code is the MQTT 5.0 Reason Code of the DISCONNECT a v5 client is
	// sent; 0 means Malformed Packet (0x81).
	Code byte
}

func (e *protocolError) Error() string {
	if e.Clause == "" {
		return "mqtt protocol error: " + e.Reason
	}
	return "mqtt protocol error: " + e.Reason + " [" + e.Clause + "]"
}

// malformed returns a *protocolError citing clause.
func malformed(clause, format string, args ...any) error {
	return &protocolError{Clause: clause, Reason: fmt.Sprintf(format, args...)}
}

// violation returns a *protocolError with the v5 Reason Code code.
func violation(code byte, clause, format string, args ...any) error {
	return &protocolError{Clause: clause, Reason: fmt.Sprintf(format, args...), Code: code}
}

// isProtocolError reports whether err is a violation by the peer.
func isProtocolError(err error) bool {
	var pe *protocolError
	return errors.As(err, &pe)
}

// errTruncated: the body ended before a field it announced.
var errTruncated = &protocolError{Clause: "MQTT-2.2.3", Reason: "packet body shorter than its fields"}

// decodeRemainingLength parses the variable-length Remaining Length at the
// start of b. It returns the value and the number of bytes used; used == 0
// means b holds too few bytes yet. More than four bytes is malformed.
func decodeRemainingLength(b []byte) (value, used int, err error) {
	multiplier := 1
	for i := 0; i < 4; i++ {
		if i >= len(b) {
			return 0, 0, nil
		}
		value += int(b[i]&0x7f) * multiplier
		if b[i]&0x80 == 0 {
			return value, i + 1, nil
		}
		multiplier *= 128
	}
	return 0, 0, malformed("MQTT-2.2.3", "remaining length longer than 4 bytes")
}

// appendRemainingLength appends n in the variable-length encoding.
func appendRemainingLength(dst []byte, n int) []byte {
	for {
		digit := byte(n % 128)
		n /= 128
		if n > 0 {
			digit |= 0x80
		}
		dst = append(dst, digit)
		if n == 0 {
			return dst
		}
	}
}

// remainingLengthSize is the number of bytes appendRemainingLength uses.
func remainingLengthSize(n int) int {
	switch {
	case n < 128:
		return 1
	case n < 16_384:
		return 2
	case n < 2_097_152:
		return 3
	}
	return 4
}

// appendHeader appends a fixed header.
func appendHeader(dst []byte, t packetType, flags byte, remaining int) []byte {
	dst = append(dst, byte(t)<<4|flags&0x0f)
	return appendRemainingLength(dst, remaining)
}

// requiredFlags are the fixed-header flag bits every packet but PUBLISH must
// carry exactly [MQTT-2.2.2-1].
func requiredFlags(t packetType) byte {
	switch t {
	case typePubrel, typeSubscribe, typeUnsubscribe:
		return 0x02
	}
	return 0
}

// decodePacket decodes one packet from the first byte of its fixed header
// and its body (the Remaining Length bytes). Strings and payloads are copied,
// so body may be reused afterwards.
func decodePacket(first byte, body []byte) (packet, error) {
	t := packetType(first >> 4)
	flags := first & 0x0f
	if t != typePublish && t >= typeConnect && t <= typeDisconnect && flags != requiredFlags(t) {
		// [MQTT-2.2.2-2] invalid flags: the receiver must close the connection.
		return nil, malformed("MQTT-2.2.2-2", "%s with reserved flags %04b", t, flags)
	}
	switch t {
	case typeConnect:
		return decodeConnect(body)
	case typeConnack:
		return decodeConnack(body)
	case typePublish:
		return decodePublish(flags, body)
	case typePuback, typePubrec, typePubrel, typePubcomp, typeUnsuback:
		return decodeAck(t, body)
	case typeSubscribe:
		return decodeSubscribe(body)
	case typeSuback:
		return decodeSuback(body)
	case typeUnsubscribe:
		return decodeUnsubscribe(body)
	case typePingreq, typePingresp, typeDisconnect:
		return decodeEmpty(t, body)
	}
	return nil, malformed("MQTT-2.2.1", "reserved packet type %d", t)
}
