package mqttbroker

import "slices"

// MQTT 5.0 Reason Codes [MQTT-2.4] used by the broker.
const (
	rcSuccess                byte = 0x00 // also Normal disconnection, Granted QoS 0
	rcDisconnectWithWill     byte = 0x04
	rcNoMatchingSubscribers  byte = 0x10
	rcNoSubscriptionExisted  byte = 0x11
	rcUnspecified            byte = 0x80
	rcMalformed              byte = 0x81
	rcProtocolError          byte = 0x82
	rcImplementationSpecific byte = 0x83
	rcUnsupportedVersion     byte = 0x84
	rcClientIDNotValid       byte = 0x85
	rcBadUserNameOrPassword  byte = 0x86
	rcNotAuthorized          byte = 0x87
	rcServerUnavailable      byte = 0x88
	rcServerBusy             byte = 0x89
	rcBanned                 byte = 0x8A
	rcServerShuttingDown     byte = 0x8B
	rcBadAuthMethod          byte = 0x8C
	rcKeepAliveTimeout       byte = 0x8D
	rcSessionTakenOver       byte = 0x8E
	rcTopicFilterInvalid     byte = 0x8F
	rcTopicNameInvalid       byte = 0x90
	rcPacketIDInUse          byte = 0x91
	rcPacketIDNotFound       byte = 0x92
	rcReceiveMaximumExceeded byte = 0x93
	rcTopicAliasInvalid      byte = 0x94
	rcPacketTooLarge         byte = 0x95
	rcMessageRateTooHigh     byte = 0x96
	rcQuotaExceeded          byte = 0x97
	rcAdministrativeAction   byte = 0x98
	rcPayloadFormatInvalid   byte = 0x99
	rcRetainNotSupported     byte = 0x9A
	rcQoSNotSupported        byte = 0x9B
	rcUseAnotherServer       byte = 0x9C
	rcServerMoved            byte = 0x9D
	rcSharedNotSupported     byte = 0x9E
	rcConnectionRateExceeded byte = 0x9F
	rcMaximumConnectTime     byte = 0xA0
	rcSubIDsNotSupported     byte = 0xA1
	rcWildcardsNotSupported  byte = 0xA2
	rcContinueAuthentication byte = 0x18
	rcReAuthenticate         byte = 0x19
	rcGrantedQoS1            byte = 0x01
	rcGrantedQoS2            byte = 0x02
)

// The Reason Codes each v5 packet may carry (Table 2-6).
var (
	connackCodes = []byte{rcSuccess, rcUnspecified, rcMalformed, rcProtocolError, rcImplementationSpecific,
		rcUnsupportedVersion, rcClientIDNotValid, rcBadUserNameOrPassword, rcNotAuthorized, rcServerUnavailable,
		rcServerBusy, rcBanned, rcBadAuthMethod, rcTopicNameInvalid, rcPacketTooLarge, rcQuotaExceeded,
		rcPayloadFormatInvalid, rcRetainNotSupported, rcQoSNotSupported, rcUseAnotherServer, rcServerMoved,
		rcConnectionRateExceeded}
	pubackCodes = []byte{rcSuccess, rcNoMatchingSubscribers, rcUnspecified, rcImplementationSpecific,
		rcNotAuthorized, rcTopicNameInvalid, rcPacketIDInUse, rcQuotaExceeded, rcPayloadFormatInvalid}
	pubrelCodes = []byte{rcSuccess, rcPacketIDNotFound}
	subackCodes = []byte{rcSuccess, rcGrantedQoS1, rcGrantedQoS2, rcUnspecified, rcImplementationSpecific,
		rcNotAuthorized, rcTopicFilterInvalid, rcPacketIDInUse, rcQuotaExceeded, rcSharedNotSupported,
		rcSubIDsNotSupported, rcWildcardsNotSupported}
	unsubackCodes = []byte{rcSuccess, rcNoSubscriptionExisted, rcUnspecified, rcImplementationSpecific,
		rcNotAuthorized, rcTopicFilterInvalid, rcPacketIDInUse}
	disconnectCodes = []byte{rcSuccess, rcDisconnectWithWill, rcUnspecified, rcMalformed, rcProtocolError,
		rcImplementationSpecific, rcNotAuthorized, rcServerBusy, rcServerShuttingDown, rcKeepAliveTimeout,
		rcSessionTakenOver, rcTopicFilterInvalid, rcTopicNameInvalid, rcReceiveMaximumExceeded,
		rcTopicAliasInvalid, rcPacketTooLarge, rcMessageRateTooHigh, rcQuotaExceeded, rcAdministrativeAction,
		rcPayloadFormatInvalid, rcRetainNotSupported, rcQoSNotSupported, rcUseAnotherServer, rcServerMoved,
		rcSharedNotSupported, rcConnectionRateExceeded, rcMaximumConnectTime, rcSubIDsNotSupported,
		rcWildcardsNotSupported}
	authCodes = []byte{rcSuccess, rcContinueAuthentication, rcReAuthenticate}
)

// checkReasonCode makes a Reason Code not defined for t a malformed packet
// [MQTT-2.4]: the statements for each packet, e.g. [MQTT-3.4.2-1], say the
// sender must use one of the codes of its table.
func checkReasonCode(t packetType, code byte, valid []byte) error {
	if !slices.Contains(valid, code) {
		return &protocolError{Clause: "MQTT-2.4", Reason: t.String() + " with an invalid reason code", Code: rcProtocolError}
	}
	return nil
}

// decodePacketV5 decodes a packet of an MQTT 5.0 connection (see
// decodePacket): same fixed header rules, properties and reason codes in
// the variable header.
func decodePacketV5(first byte, body []byte) (packet, error) {
	t := packetType(first >> 4)
	flags := first & 0x0f
	if t != typePublish && t >= typeConnect && flags != requiredFlags(t) {
		return nil, malformed("MQTT-2.1.3-1", "%s with reserved flags %04b", t, flags)
	}
	switch t {
	case typeConnect:
		return decodeConnect(body)
	case typeConnack:
		return decodeConnackV5(body)
	case typePublish:
		return decodePublishV5(flags, body)
	case typePuback, typePubrec, typePubrel, typePubcomp:
		return decodeAckV5(t, body)
	case typeSubscribe:
		return decodeSubscribeV5(body)
	case typeSuback:
		return decodeSubackV5(body)
	case typeUnsubscribe:
		return decodeUnsubscribeV5(body)
	case typeUnsuback:
		return decodeUnsubackV5(body)
	case typePingreq, typePingresp:
		return decodeEmpty(t, body)
	case typeDisconnect:
		return decodeDisconnect(body)
	case typeAuth:
		return decodeAuth(body)
	}
	return nil, malformed("MQTT-2.1.3-1", "reserved packet type %d", t)
}

// disconnectPacket is the MQTT 5.0 DISCONNECT [MQTT-3.14], sent by either
// side. Reason 0 with no properties encodes as the two-byte form.
type disconnectPacket struct {
	Reason byte
	Props  *properties
}

func (p *disconnectPacket) kind() packetType { return typeDisconnect }

func decodeDisconnect(body []byte) (packet, error) {
	p := &disconnectPacket{}
	if len(body) == 0 {
		return p, nil // [MQTT-3.14.2.1] no reason code: 0x00
	}
	r := fieldReader{b: body}
	p.Reason, _ = r.byte()
	if err := checkReasonCode(typeDisconnect, p.Reason, disconnectCodes); err != nil {
		return nil, err
	}
	if !r.empty() {
		var err error
		if p.Props, err = decodeProperties(&r, typeDisconnect); err != nil {
			return nil, err
		}
	}
	if !r.empty() {
		return nil, malformed("MQTT-3.14.2", "%d bytes after the DISCONNECT properties", len(r.rest()))
	}
	return p, nil
}

func (p *disconnectPacket) appendTo(dst []byte) []byte {
	if p.Reason == 0 && p.Props == nil {
		return append(dst, byte(typeDisconnect)<<4, 0)
	}
	n := 1
	if p.Props != nil {
		n += propertiesSize(p.Props)
	}
	dst = appendHeader(dst, typeDisconnect, 0, n)
	dst = append(dst, p.Reason)
	if p.Props != nil {
		dst = appendProperties(dst, p.Props)
	}
	return dst
}

// authPacket is AUTH [MQTT-3.15]. The broker offers no enhanced
// authentication: it is decoded only to be refused.
type authPacket struct {
	Reason byte
	Props  *properties
}

func (p *authPacket) kind() packetType { return typeAuth }

func decodeAuth(body []byte) (packet, error) {
	p := &authPacket{}
	if len(body) == 0 {
		return p, nil
	}
	r := fieldReader{b: body}
	p.Reason, _ = r.byte()
	if err := checkReasonCode(typeAuth, p.Reason, authCodes); err != nil {
		return nil, err
	}
	var err error
	if p.Props, err = decodeProperties(&r, typeAuth); err != nil {
		return nil, err
	}
	if !r.empty() {
		return nil, malformed("MQTT-3.15.2", "%d bytes after the AUTH properties", len(r.rest()))
	}
	return p, nil
}

func (p *authPacket) appendTo(dst []byte) []byte {
	if p.Reason == 0 && p.Props == nil {
		return append(dst, byte(typeAuth)<<4, 0)
	}
	dst = appendHeader(dst, typeAuth, 0, 1+propertiesSize(p.Props))
	dst = append(dst, p.Reason)
	return appendProperties(dst, p.Props)
}

// unsubackPacket is the MQTT 5.0 UNSUBACK [MQTT-3.11]: one Reason Code per
// Topic Filter. 3.1.1's UNSUBACK is an ackPacket.
type unsubackPacket struct {
	ID          uint16
	Props       *properties
	ReasonCodes []byte
}

func (p *unsubackPacket) kind() packetType { return typeUnsuback }

func decodeUnsubackV5(body []byte) (packet, error) {
	r := fieldReader{b: body}
	id, err := r.packetID()
	if err != nil {
		return nil, err
	}
	p := &unsubackPacket{ID: id}
	if p.Props, err = decodeProperties(&r, typeUnsuback); err != nil {
		return nil, err
	}
	if r.empty() {
		return nil, malformed("MQTT-3.11.3-1", "UNSUBACK without reason codes")
	}
	for _, c := range r.rest() {
		if err := checkReasonCode(typeUnsuback, c, unsubackCodes); err != nil {
			return nil, err
		}
	}
	p.ReasonCodes = cloneBytes(r.rest())
	return p, nil
}

func (p *unsubackPacket) appendTo(dst []byte) []byte {
	dst = appendHeader(dst, typeUnsuback, 0, 2+propertiesSize(p.Props)+len(p.ReasonCodes))
	dst = appendUint16(dst, p.ID)
	dst = appendProperties(dst, p.Props)
	return append(dst, p.ReasonCodes...)
}
