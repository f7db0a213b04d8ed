package mqttbroker

import "fmt"

// publishPacket is PUBLISH [MQTT-3.3].
type publishPacket struct {
	Dup     bool
	QoS     byte
	Retain  bool
	Topic   string
	ID      uint16 // present only when QoS > 0
	Payload []byte
	// V5: encoded with properties (MQTT 5.0); Props may still be nil.
	V5    bool
	Props *properties
}

func (p *publishPacket) kind() packetType { return typePublish }

func (p *publishPacket) String() string {
	return fmt.Sprintf("PUBLISH topic=%q qos=%d id=%d dup=%t retain=%t payload=%dB", p.Topic, p.QoS, p.ID, p.Dup, p.Retain, len(p.Payload))
}

func decodePublish(flags byte, body []byte) (packet, error) {
	p := &publishPacket{Dup: flags&0x08 != 0, QoS: flags >> 1 & 0x03, Retain: flags&0x01 != 0}
	switch {
	case p.QoS == 3:
		return nil, malformed("MQTT-3.3.1-4", "PUBLISH with QoS 3")
	case p.Dup && p.QoS == 0:
		return nil, malformed("MQTT-3.3.1-2", "DUP set on a QoS 0 PUBLISH")
	}
	r := fieldReader{b: body}
	var err error
	if p.Topic, err = r.string("topic name"); err != nil { // [MQTT-3.3.2-1]
		return nil, err
	}
	if err := checkTopicName(p.Topic); err != nil {
		return nil, err
	}
	if p.QoS > 0 {
		if p.ID, err = r.packetID(); err != nil {
			return nil, err
		}
	}
	p.Payload = cloneBytes(r.rest())
	if p.Payload == nil {
		p.Payload = []byte{}
	}
	return p, nil
}

// decodePublishV5 decodes an MQTT 5.0 PUBLISH [MQTT-3.3.2.3]: properties
// follow the packet id. An empty topic is allowed only with a Topic Alias,
// which the connection resolves [MQTT-3.3.2-8].
func decodePublishV5(flags byte, body []byte) (packet, error) {
	p := &publishPacket{Dup: flags&0x08 != 0, QoS: flags >> 1 & 0x03, Retain: flags&0x01 != 0, V5: true}
	switch {
	case p.QoS == 3:
		return nil, malformed("MQTT-3.3.1-4", "PUBLISH with QoS 3")
	case p.Dup && p.QoS == 0:
		return nil, malformed("MQTT-3.3.1-2", "DUP set on a QoS 0 PUBLISH")
	}
	r := fieldReader{b: body}
	var err error
	if p.Topic, err = r.string("topic name"); err != nil {
		return nil, err
	}
	if p.QoS > 0 {
		if p.ID, err = r.packetID(); err != nil {
			return nil, err
		}
	}
	if p.Props, err = decodeProperties(&r, typePublish); err != nil {
		return nil, err
	}
	if p.Topic != "" || !p.Props.has(propTopicAlias) {
		if err := checkTopicName(p.Topic); err != nil {
			return nil, err
		}
	}
	p.Payload = cloneBytes(r.rest())
	if p.Payload == nil {
		p.Payload = []byte{}
	}
	return p, nil
}

// size is the Remaining Length of p.
func (p *publishPacket) size() int {
	n := 2 + len(p.Topic) + len(p.Payload)
	if p.QoS > 0 {
		n += 2
	}
	if p.V5 {
		n += propertiesSize(p.Props)
	}
	return n
}

func (p *publishPacket) appendTo(dst []byte) []byte {
	flags := p.QoS << 1
	if p.Dup {
		flags |= 0x08
	}
	if p.Retain {
		flags |= 0x01
	}
	dst = appendHeader(dst, typePublish, flags, p.size())
	dst = appendString(dst, p.Topic)
	if p.QoS > 0 {
		dst = appendUint16(dst, p.ID)
	}
	if p.V5 {
		dst = appendProperties(dst, p.Props)
	}
	return append(dst, p.Payload...)
}
