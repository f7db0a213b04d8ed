package mqttbroker

// ackPacket is any of the packets whose body is only a Packet Identifier:
// PUBACK [MQTT-3.4], PUBREC [MQTT-3.5], PUBREL [MQTT-3.6], PUBCOMP [MQTT-3.7]
// and UNSUBACK [MQTT-3.11].
//
// In MQTT 5.0 PUBACK..PUBCOMP add a Reason Code and properties, both left
// out when the code is 0 and there are none [MQTT-3.4.2.1]; so the 3.1.1
// encoding is the v5 short form.
type ackPacket struct {
	Type   packetType
	ID     uint16
	Reason byte
	Props  *properties
}

func (p *ackPacket) kind() packetType { return p.Type }

func decodeAck(t packetType, body []byte) (packet, error) {
	if len(body) != 2 {
		return nil, malformed("MQTT-2.2.3", "%s remaining length %d, want 2", t, len(body))
	}
	r := fieldReader{b: body}
	id, err := r.packetID()
	if err != nil {
		return nil, err
	}
	return &ackPacket{Type: t, ID: id}, nil
}

// decodeAckV5 decodes an MQTT 5.0 PUBACK, PUBREC, PUBREL or PUBCOMP.
func decodeAckV5(t packetType, body []byte) (packet, error) {
	r := fieldReader{b: body}
	id, err := r.packetID()
	if err != nil {
		return nil, err
	}
	p := &ackPacket{Type: t, ID: id}
	if r.empty() {
		return p, nil
	}
	p.Reason, _ = r.byte()
	valid := pubackCodes
	if t == typePubrel || t == typePubcomp {
		valid = pubrelCodes
	}
	if err := checkReasonCode(t, p.Reason, valid); err != nil {
		return nil, err
	}
	if !r.empty() {
		if p.Props, err = decodeProperties(&r, t); err != nil {
			return nil, err
		}
	}
	if !r.empty() {
		return nil, malformed("MQTT-2.2.3", "%d bytes after the %s properties", len(r.rest()), t)
	}
	return p, nil
}

func (p *ackPacket) appendTo(dst []byte) []byte {
	if p.Reason == 0 && p.Props == nil {
		dst = appendHeader(dst, p.Type, requiredFlags(p.Type), 2)
		return appendUint16(dst, p.ID)
	}
	n := 3
	if p.Props != nil {
		n += propertiesSize(p.Props)
	}
	dst = appendHeader(dst, p.Type, requiredFlags(p.Type), n)
	dst = append(appendUint16(dst, p.ID), p.Reason)
	if p.Props != nil {
		dst = appendProperties(dst, p.Props)
	}
	return dst
}
