package mqttbroker

// connackPacket is CONNACK [MQTT-3.2]; only the server sends it.
type connackPacket struct {
	SessionPresent bool
	ReturnCode     byte
}

func (p *connackPacket) kind() packetType { return typeConnack }

func decodeConnack(body []byte) (packet, error) {
	if len(body) != 2 {
		return nil, malformed("MQTT-3.2.1", "CONNACK remaining length %d, want 2", len(body))
	}
	if body[0]&^0x01 != 0 {
		return nil, malformed("MQTT-3.2.2.1", "reserved connect acknowledge flags %08b", body[0])
	}
	if body[1] > connRefusedNotAuth {
		return nil, malformed("MQTT-3.2.2.3", "CONNACK return code %d", body[1])
	}
	return &connackPacket{SessionPresent: body[0] == 1, ReturnCode: body[1]}, nil
}

func (p *connackPacket) appendTo(dst []byte) []byte {
	var ack byte
	if p.SessionPresent {
		ack = 1
	}
	dst = appendHeader(dst, typeConnack, 0, 2)
	return append(dst, ack, p.ReturnCode)
}
