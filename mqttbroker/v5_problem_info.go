package mqttbroker

// Reason Strings [MQTT-3.4.2.2.2]: an acknowledgement that refuses
// something says why in words beside its Reason Code, unless the client's
// CONNECT had Request Problem Information 0. Then it gets none — and no
// User Property either, which the server never puts on an
// acknowledgement: apart from PUBLISH, CONNACK and DISCONNECT, a packet to
// a v5 client is written by send, and withProblemInfo is the only place a
// Reason String is added [MQTT-3.1.2-29].

// withProblemInfo returns p with the Reason String of its refusal, when
// the client accepts problem information, p refuses something and the
// string keeps p within the client's Maximum Packet Size [MQTT-3.4.2-2]
// (the same rule for each acknowledgement). Otherwise p as it is.
func (c *conn) withProblemInfo(p packet) packet {
	st := c.v5
	if st == nil || st.noProblemInfo {
		return p
	}
	var (
		text  string
		props **properties
	)
	switch p := p.(type) {
	case *ackPacket:
		if p.Props == nil {
			text, props = problemText(p.Type, p.Reason), &p.Props
		}
	case *subackPacket:
		if p.Props == nil {
			text, props = problemText(typeSuback, firstRefusal(p.ReturnCodes)), &p.Props
		}
	case *unsubackPacket:
		if p.Props == nil {
			text, props = problemText(typeUnsuback, firstRefusal(p.ReasonCodes)), &p.Props
		}
	}
	if text == "" {
		return p
	}
	*props = &properties{ReasonString: text}
	(*props).set(propReasonString)
	if !c.fitsClient(len(p.appendTo(nil))) {
		*props = nil
	}
	return p
}

// firstRefusal is the first Reason Code of 0x80 or more in codes, or 0.
func firstRefusal(codes []byte) byte {
	for _, code := range codes {
		if code >= 0x80 {
			return code
		}
	}
	return 0
}

// problemText is the Reason String of Reason Code code on a packet of type
// t, as the broker uses the code there; "" for success or a code it does
// not send there.
func problemText(t packetType, code byte) string {
	switch t {
	case typePuback, typePubrec:
		switch code {
		case rcNotAuthorized:
			return "not authorized to publish to this topic"
		case rcTopicNameInvalid:
			return "topic name over the broker's length or level limit"
		case rcPayloadFormatInvalid:
			return "payload is not the UTF-8 its Payload Format Indicator says"
		case rcQuotaExceeded:
			return "the broker's persistent store is full"
		}
	case typePubcomp:
		if code == rcPacketIDNotFound {
			return "no QoS 2 message with this packet identifier awaits its PUBREL"
		}
	case typeSuback:
		switch code {
		case rcNotAuthorized:
			return "not authorized to subscribe to this topic filter"
		case rcTopicFilterInvalid:
			return "topic filter over the broker's length or level limit"
		case rcQuotaExceeded:
			return "too many subscriptions for this client"
		}
	}
	return ""
}
