package mqttbroker

// subackFailure is the SUBACK return code of a refused subscription.
const subackFailure byte = 0x80

// subackPacket is SUBACK [MQTT-3.9]; only the server sends it.
type subackPacket struct {
	ID          uint16
	ReturnCodes []byte // in MQTT 5.0 Reason Codes
	// V5: encoded with properties (MQTT 5.0).
	V5    bool
	Props *properties
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

func decodeSubackV5(body []byte) (packet, error) {
	r := fieldReader{b: body}
	id, err := r.packetID()
	if err != nil {
		return nil, err
	}
	p := &subackPacket{ID: id, V5: true}
	if p.Props, err = decodeProperties(&r, typeSuback); err != nil {
		return nil, err
	}
	if r.empty() {
		return nil, malformed("MQTT-3.9.3-1", "SUBACK without reason codes")
	}
	for _, c := range r.rest() {
		if err := checkReasonCode(typeSuback, c, subackCodes); err != nil {
			return nil, err
		}
	}
	p.ReturnCodes = cloneBytes(r.rest())
	return p, nil
}

func (p *subackPacket) appendTo(dst []byte) []byte {
	n := 2 + len(p.ReturnCodes)
	if p.V5 {
		n += propertiesSize(p.Props)
	}
	dst = appendHeader(dst, typeSuback, 0, n)
	dst = appendUint16(dst, p.ID)
	if p.V5 {
		dst = appendProperties(dst, p.Props)
	}
	return append(dst, p.ReturnCodes...)
}
