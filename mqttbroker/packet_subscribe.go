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
