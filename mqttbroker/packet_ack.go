package mqttbroker

// ackPacket is any of the packets whose body is only a Packet Identifier:
// PUBACK [MQTT-3.4], PUBREC [MQTT-3.5], PUBREL [MQTT-3.6], PUBCOMP [MQTT-3.7]
// and UNSUBACK [MQTT-3.11].
type ackPacket struct {
	Type packetType
	ID   uint16
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

func (p *ackPacket) appendTo(dst []byte) []byte {
	dst = appendHeader(dst, p.Type, requiredFlags(p.Type), 2)
	return appendUint16(dst, p.ID)
}
