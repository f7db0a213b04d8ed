package mqttbroker

// subscription is one Topic Filter and requested QoS of a SUBSCRIBE.
// Options holds the MQTT 5.0 Subscription Options bits above the QoS:
// No Local, Retain As Published and Retain Handling [MQTT-3.8.3.1].
type subscription struct {
	Filter  string
	QoS     byte
	Options byte
}

// Subscription Options bits [MQTT-3.8.3.1].
const (
	optNoLocal           = 0x04
	optRetainAsPublished = 0x08
	optRetainHandling    = 0x30
)

// subscribePacket is SUBSCRIBE [MQTT-3.8].
type subscribePacket struct {
	ID            uint16
	Subscriptions []subscription
	// V5: encoded with properties and options (MQTT 5.0).
	V5    bool
	Props *properties
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

// decodeSubscribeV5 decodes an MQTT 5.0 SUBSCRIBE: properties, then
// filters each with a Subscription Options byte.
func decodeSubscribeV5(body []byte) (packet, error) {
	r := fieldReader{b: body}
	id, err := r.packetID()
	if err != nil {
		return nil, err
	}
	p := &subscribePacket{ID: id, V5: true}
	if p.Props, err = decodeProperties(&r, typeSubscribe); err != nil {
		return nil, err
	}
	if p.Props.has(propSubscriptionID) && len(p.Props.SubscriptionIDs) > 1 {
		return nil, violation(rcProtocolError, "MQTT-3.8.2.1.2", "more than one subscription identifier")
	}
	for !r.empty() {
		filter, err := r.string("topic filter")
		if err != nil {
			return nil, err
		}
		if err := checkTopicFilter(filter); err != nil {
			return nil, err
		}
		opts, err := r.byte()
		if err != nil {
			return nil, err
		}
		switch {
		case opts&0xc0 != 0:
			return nil, malformed("MQTT-3.8.3-5", "reserved subscription option bits %08b", opts)
		case opts&0x03 == 3:
			return nil, malformed("MQTT-3.8.3-5", "subscription with QoS 3")
		case opts&optRetainHandling == optRetainHandling:
			return nil, malformed("MQTT-3.8.3-5", "retain handling 3")
		}
		p.Subscriptions = append(p.Subscriptions, subscription{Filter: filter, QoS: opts & 0x03, Options: opts &^ 0x03})
	}
	if len(p.Subscriptions) == 0 {
		return nil, violation(rcProtocolError, "MQTT-3.8.3-2", "SUBSCRIBE without topic filters")
	}
	return p, nil
}

func (p *subscribePacket) appendTo(dst []byte) []byte {
	n := 2
	for _, s := range p.Subscriptions {
		n += 2 + len(s.Filter) + 1
	}
	if p.V5 {
		n += propertiesSize(p.Props)
	}
	dst = appendHeader(dst, typeSubscribe, requiredFlags(typeSubscribe), n)
	dst = appendUint16(dst, p.ID)
	if p.V5 {
		dst = appendProperties(dst, p.Props)
	}
	for _, s := range p.Subscriptions {
		dst = appendString(dst, s.Filter)
		dst = append(dst, s.QoS|s.Options)
	}
	return dst
}
