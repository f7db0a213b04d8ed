package mqttbroker

// emptyPacket is a packet with no body: PINGREQ [MQTT-3.12], PINGRESP
// [MQTT-3.13] and DISCONNECT [MQTT-3.14].
type emptyPacket struct {
	Type packetType
}

func (p *emptyPacket) kind() packetType { return p.Type }

func decodeEmpty(t packetType, body []byte) (packet, error) {
	if len(body) != 0 {
		return nil, malformed("MQTT-2.2.3", "%s with remaining length %d, want 0", t, len(body))
	}
	return &emptyPacket{Type: t}, nil
}

func (p *emptyPacket) appendTo(dst []byte) []byte {
	return append(dst, byte(p.Type)<<4, 0)
}
