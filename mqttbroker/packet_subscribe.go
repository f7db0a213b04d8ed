package mqttbroker

// subscription is one Topic Filter and requested QoS of a SUBSCRIBE.
type subscription struct {
	Filter string
	QoS    byte
}

// subscribePacket is SUBSCRIBE [MQTT-3.8].
type subscribePacket struct {
	ID            uint16
	Subscriptions []subscription
}

func (p *subscribePacket) kind() packetType { return typeSubscribe }

func decodeSubscribe(body []byte) (packet, error) {
	r := fieldReader{b: body}
	id, err := r.packetID()
	if err != nil {
		return nil, err
	}
	p := &subscribePacket{ID: id}
	for !r.empty() {
		filter, err := r.string("topic filter") // [MQTT-3.8.3-1]
		if err != nil {
			return nil, err
		}
		if err := checkTopicFilter(filter); err != nil {
			return nil, err
		}
		qos, err := r.byte()
		if err != nil {
			return nil, err
		}
		if qos > 2 { // reserved bits or QoS 3
			return nil, malformed("MQTT-3-8.3-4", "requested QoS byte %#02x", qos)
		}
		p.Subscriptions = append(p.Subscriptions, subscription{Filter: filter, QoS: qos})
	}
	if len(p.Subscriptions) == 0 {
		return nil, malformed("MQTT-3.8.3-3", "SUBSCRIBE without topic filters")
	}
	return p, nil
}

func (p *subscribePacket) appendTo(dst []byte) []byte {
	n := 2
	for _, s := range p.Subscriptions {
		n += 2 + len(s.Filter) + 1
	}
	dst = appendHeader(dst, typeSubscribe, requiredFlags(typeSubscribe), n)
	dst = appendUint16(dst, p.ID)
	for _, s := range p.Subscriptions {
		dst = appendString(dst, s.Filter)
		dst = append(dst, s.QoS)
	}
	return dst
}

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

// unsubscribePacket is UNSUBSCRIBE [MQTT-3.10].
type unsubscribePacket struct {
	ID      uint16
	Filters []string
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

func (p *unsubscribePacket) appendTo(dst []byte) []byte {
	n := 2
	for _, f := range p.Filters {
		n += 2 + len(f)
	}
	dst = appendHeader(dst, typeUnsubscribe, requiredFlags(typeUnsubscribe), n)
	dst = appendUint16(dst, p.ID)
	for _, f := range p.Filters {
		dst = appendString(dst, f)
	}
	return dst
}
