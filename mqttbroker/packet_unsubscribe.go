package mqttbroker

// unsubscribePacket is UNSUBSCRIBE [MQTT-3.10].
type unsubscribePacket struct {
	ID      uint16
	Filters []string
	// V5: encoded with properties (MQTT 5.0).
	V5    bool
	Props *properties
}

func (p *unsubscribePacket) kind() packetType { return typeUnsubscribe }

func decodeUnsubscribe(body []byte) (packet, error) {
	r := fieldReader{b: body}
	id, err := r.packetID()
	if err != nil {
		return nil, err
	}
	p := &unsubscribePacket{ID: id}
	for !r.empty() {
		filter, err := r.string("topic filter") // [MQTT-3.10.3-1]
		if err != nil {
			return nil, err
		}
		if err := checkTopicFilter(filter); err != nil {
			return nil, err
		}
		p.Filters = append(p.Filters, filter)
	}
	if len(p.Filters) == 0 {
		return nil, malformed("MQTT-3.10.3-2", "UNSUBSCRIBE without topic filters")
	}
	return p, nil
}

func decodeUnsubscribeV5(body []byte) (packet, error) {
	r := fieldReader{b: body}
	id, err := r.packetID()
	if err != nil {
		return nil, err
	}
	props, err := decodeProperties(&r, typeUnsubscribe)
	if err != nil {
		return nil, err
	}
	rest, err := decodeUnsubscribe(append(appendUint16(nil, id), r.rest()...))
	if err != nil {
		return nil, err
	}
	p := rest.(*unsubscribePacket)
	p.V5, p.Props = true, props
	return p, nil
}

func (p *unsubscribePacket) appendTo(dst []byte) []byte {
	n := 2
	for _, f := range p.Filters {
		n += 2 + len(f)
	}
	if p.V5 {
		n += propertiesSize(p.Props)
	}
	dst = appendHeader(dst, typeUnsubscribe, requiredFlags(typeUnsubscribe), n)
	dst = appendUint16(dst, p.ID)
	if p.V5 {
		dst = appendProperties(dst, p.Props)
	}
	for _, f := range p.Filters {
		dst = appendString(dst, f)
	}
	return dst
}
