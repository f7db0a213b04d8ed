package mqttbroker

// connackPacket is CONNACK [MQTT-3.2]; only the server sends it.
type connackPacket struct {
	SessionPresent bool
	ReturnCode     byte // in MQTT 5.0 a Reason Code
	// V5: encoded with properties (MQTT 5.0); Props may still be nil.
	V5    bool
	Props *properties
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

func decodeConnackV5(body []byte) (packet, error) {
	r := fieldReader{b: body}
	flags, err := r.byte()
	if err != nil {
		return nil, err
	}
	if flags&^0x01 != 0 {
		return nil, malformed("MQTT-3.2.2-1", "reserved connect acknowledge flags %08b", flags)
	}
	p := &connackPacket{SessionPresent: flags == 1, V5: true}
	if p.ReturnCode, err = r.byte(); err != nil {
		return nil, err
	}
	if err := checkReasonCode(typeConnack, p.ReturnCode, connackCodes); err != nil {
		return nil, err
	}
	if p.Props, err = decodeProperties(&r, typeConnack); err != nil {
		return nil, err
	}
	if !r.empty() {
		return nil, malformed("MQTT-3.2.2", "%d bytes after the CONNACK properties", len(r.rest()))
	}
	return p, nil
}

func (p *connackPacket) appendTo(dst []byte) []byte {
	var ack byte
	if p.SessionPresent {
		ack = 1
	}
	if p.V5 {
		dst = appendHeader(dst, typeConnack, 0, 2+propertiesSize(p.Props))
		return appendProperties(append(dst, ack, p.ReturnCode), p.Props)
	}
	dst = appendHeader(dst, typeConnack, 0, 2)
	return append(dst, ack, p.ReturnCode)
}
