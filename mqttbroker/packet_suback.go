package mqttbroker

// subackFailure is the SUBACK return code of a refused subscription.
const subackFailure byte = 0x80

// subackPacket is SUBACK [MQTT-3.9]; only the server sends it.
type subackPacket struct {
	ID          uint16
	ReturnCodes []byte
}

func (p *subackPacket) kind() packetType { return typeSuback }

func decodeSuback(body []byte) (packet, error) {
	r := fieldReader{b: body}
	id, err := r.packetID()
	if err != nil {
		return nil, err
	}
	codes := r.rest()
	if len(codes) == 0 {
		return nil, malformed("MQTT-3.9.3-1", "SUBACK without return codes")
	}
	for _, c := range codes {
		if c > 2 && c != subackFailure {
			return nil, malformed("MQTT-3.9.3-2", "SUBACK return code %#02x", c)
		}
	}
	return &subackPacket{ID: id, ReturnCodes: cloneBytes(codes)}, nil
}

func (p *subackPacket) appendTo(dst []byte) []byte {
	dst = appendHeader(dst, typeSuback, 0, 2+len(p.ReturnCodes))
	dst = appendUint16(dst, p.ID)
	return append(dst, p.ReturnCodes...)
}
