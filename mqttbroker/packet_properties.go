package mqttbroker

import (
	"encoding/binary"
	"slices"
	"time"
)

// MQTT 5.0 properties [MQTT-2.2.2]: a Variable Byte Integer length, then
// identifier/value pairs. Only v5 packets carry them; a v3 connection never
// allocates a properties value.

// Property identifiers [MQTT-2.2.2.2].
const (
	propPayloadFormat       = 0x01
	propMessageExpiry       = 0x02
	propContentType         = 0x03
	propResponseTopic       = 0x08
	propCorrelationData     = 0x09
	propSubscriptionID      = 0x0B
	propSessionExpiry       = 0x11
	propAssignedClientID    = 0x12
	propServerKeepAlive     = 0x13
	propAuthMethod          = 0x15
	propAuthData            = 0x16
	propRequestProblemInfo  = 0x17
	propWillDelay           = 0x18
	propRequestResponseInfo = 0x19
	propResponseInfo        = 0x1A
	propServerReference     = 0x1C
	propReasonString        = 0x1F
	propReceiveMaximum      = 0x21
	propTopicAliasMaximum   = 0x22
	propTopicAlias          = 0x23
	propMaximumQoS          = 0x24
	propRetainAvailable     = 0x25
	propUserProperty        = 0x26
	propMaximumPacketSize   = 0x27
	propWildcardAvailable   = 0x28
	propSubIDAvailable      = 0x29
	propSharedAvailable     = 0x2A
)

// propertyType is the wire type of a property value [MQTT-1.5].
type propertyType byte

const (
	propByte propertyType = iota + 1
	propUint16
	propUint32
	propVarInt
	propString
	propBinary
	propStringPair
)

// typeWill is a pseudo packet type: the Will Properties of CONNECT.
const typeWill packetType = 0

// typeAuth is the MQTT 5.0 AUTH packet [MQTT-3.15] (reserved in 3.1.1).
const typeAuth packetType = 15

// propertySpec is one row of Table 2-4: the value's type and the packets
// that may carry it, as a bit set of packet types.
type propertySpec struct {
	typ     propertyType
	packets uint16
}

func on(types ...packetType) uint16 {
	var set uint16
	for _, t := range types {
		set |= 1 << t
	}
	return set
}

var propertySpecs = [0x2B]propertySpec{
	propPayloadFormat:       {propByte, on(typePublish, typeWill)},
	propMessageExpiry:       {propUint32, on(typePublish, typeWill)},
	propContentType:         {propString, on(typePublish, typeWill)},
	propResponseTopic:       {propString, on(typePublish, typeWill)},
	propCorrelationData:     {propBinary, on(typePublish, typeWill)},
	propSubscriptionID:      {propVarInt, on(typePublish, typeSubscribe)},
	propSessionExpiry:       {propUint32, on(typeConnect, typeConnack, typeDisconnect)},
	propAssignedClientID:    {propString, on(typeConnack)},
	propServerKeepAlive:     {propUint16, on(typeConnack)},
	propAuthMethod:          {propString, on(typeConnect, typeConnack, typeAuth)},
	propAuthData:            {propBinary, on(typeConnect, typeConnack, typeAuth)},
	propRequestProblemInfo:  {propByte, on(typeConnect)},
	propWillDelay:           {propUint32, on(typeWill)},
	propRequestResponseInfo: {propByte, on(typeConnect)},
	propResponseInfo:        {propString, on(typeConnack)},
	propServerReference:     {propString, on(typeConnack, typeDisconnect)},
	propReasonString: {propString, on(typeConnack, typePuback, typePubrec, typePubrel, typePubcomp,
		typeSuback, typeUnsuback, typeDisconnect, typeAuth)},
	propReceiveMaximum:    {propUint16, on(typeConnect, typeConnack)},
	propTopicAliasMaximum: {propUint16, on(typeConnect, typeConnack)},
	propTopicAlias:        {propUint16, on(typePublish)},
	propMaximumQoS:        {propByte, on(typeConnack)},
	propRetainAvailable:   {propByte, on(typeConnack)},
	propUserProperty: {propStringPair, on(typeConnect, typeConnack, typePublish, typeWill, typePuback, typePubrec,
		typePubrel, typePubcomp, typeSubscribe, typeSuback, typeUnsubscribe, typeUnsuback, typeDisconnect, typeAuth)},
	propMaximumPacketSize: {propUint32, on(typeConnect, typeConnack)},
	propWildcardAvailable: {propByte, on(typeConnack)},
	propSubIDAvailable:    {propByte, on(typeConnack)},
	propSharedAvailable:   {propByte, on(typeConnack)},
}

// userProperty is one User Property name/value pair [MQTT-3.1.2.3.8].
type userProperty struct {
	Name, Value string
}

// properties holds the decoded properties of one packet. present has bit
// id set for every property seen, so "absent" and "zero" stay distinct and
// a repeated property is detected. Only the fields of the property ids
// present are meaningful.
type properties struct {
	present uint64
	// expiresAt is when an application message with a Message Expiry
	// Interval expires (Unix ns), set when the broker routes it; never on
	// the wire.
	expiresAt int64

	PayloadFormat       byte
	MessageExpiry       uint32
	ContentType         string
	ResponseTopic       string
	CorrelationData     []byte
	SubscriptionIDs     []uint32 // a PUBLISH to a client may carry several
	SessionExpiry       uint32
	AssignedClientID    string
	ServerKeepAlive     uint16
	AuthMethod          string
	AuthData            []byte
	RequestProblemInfo  byte
	WillDelay           uint32
	RequestResponseInfo byte
	ResponseInfo        string
	ServerReference     string
	ReasonString        string
	ReceiveMaximum      uint16
	TopicAliasMaximum   uint16
	TopicAlias          uint16
	MaximumQoS          byte
	RetainAvailable     byte
	User                []userProperty
	MaximumPacketSize   uint32
	WildcardAvailable   byte
	SubIDAvailable      byte
	SharedAvailable     byte
}

// has reports whether property id is present; p may be nil.
func (p *properties) has(id byte) bool { return p != nil && p.present&(1<<id) != 0 }

// set marks id present.
func (p *properties) set(id byte) { p.present |= 1 << id }

// decodeVarInt reads a Variable Byte Integer [MQTT-1.5.5]: at most four
// bytes, and the minimal encoding only.
func decodeVarInt(r *fieldReader) (uint32, error) {
	n, used, err := decodeRemainingLength(r.b)
	if err != nil {
		return 0, malformed("MQTT-1.5.5-1", "variable byte integer longer than 4 bytes")
	}
	if used == 0 {
		return 0, errTruncated
	}
	if used > 1 && r.b[used-1] == 0 {
		return 0, malformed("MQTT-1.5.5-1", "variable byte integer not in its shortest form")
	}
	r.b = r.b[used:]
	return uint32(n), nil
}

func (r *fieldReader) uint32() (uint32, error) {
	if len(r.b) < 4 {
		return 0, errTruncated
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v, nil
}

// decodeProperties reads the property length and the properties of a
// packet of type t. It returns nil when there are none. A property not
// allowed in t, an unknown identifier, a value out of range, or a repeat
// of a property that may appear once makes the packet malformed
// [MQTT-2.2.2-1], [MQTT-2.2.2-2].
func decodeProperties(r *fieldReader, t packetType) (*properties, error) {
	n, err := decodeVarInt(r)
	if err != nil {
		return nil, err
	}
	if int(n) > len(r.b) {
		return nil, malformed("MQTT-2.2.2-1", "property length %d beyond the packet", n)
	}
	if n == 0 {
		return nil, nil
	}
	pr := fieldReader{b: r.b[:n]}
	r.b = r.b[n:]
	p := &properties{}
	for !pr.empty() {
		id, err := decodeVarInt(&pr)
		if err != nil {
			return nil, err
		}
		if id >= uint32(len(propertySpecs)) || propertySpecs[id].typ == 0 {
			return nil, malformed("MQTT-2.2.2-2", "unknown property identifier %#02x", id)
		}
		spec := propertySpecs[id]
		if spec.packets&(1<<t) == 0 {
			return nil, malformed("MQTT-2.2.2-2", "property %#02x not allowed in %s", id, propertyPlace(t))
		}
		if err := p.decodeOne(&pr, byte(id), spec.typ); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func propertyPlace(t packetType) string {
	if t == typeWill {
		return "will properties"
	}
	if t == typeAuth {
		return "AUTH"
	}
	return t.String()
}

// decodeOne reads the value of property id into p.
func (p *properties) decodeOne(r *fieldReader, id byte, typ propertyType) error {
	repeatable := id == propUserProperty || id == propSubscriptionID
	if p.has(id) && !repeatable {
		return malformed("MQTT-2.2.2-2", "property %#02x more than once", id)
	}
	p.set(id)
	var (
		b   byte
		u16 uint16
		u32 uint32
		s   string
		bin []byte
		err error
	)
	switch typ {
	case propByte:
		b, err = r.byte()
	case propUint16:
		u16, err = r.uint16()
	case propUint32:
		u32, err = r.uint32()
	case propVarInt:
		u32, err = decodeVarInt(r)
	case propString:
		s, err = r.string("property")
	case propBinary:
		bin, err = r.binary()
		bin = cloneBytes(bin)
	case propStringPair:
		var name, value string
		if name, err = r.string("user property name"); err == nil {
			value, err = r.string("user property value")
		}
		p.User = append(p.User, userProperty{name, value})
		return err
	}
	if err != nil {
		return err
	}
	switch typ {
	case propByte:
		if b > 1 { // every byte property is 0 or 1; Maximum QoS 2 is said by its absence
			return malformed("MQTT-2.2.2-2", "property %#02x value %d, want 0 or 1", id, b)
		}
	case propUint16:
		if u16 == 0 && (id == propReceiveMaximum || id == propTopicAlias) {
			return malformed("MQTT-3.3.2-8", "property %#02x value 0", id)
		}
	case propUint32:
		if u32 == 0 && id == propMaximumPacketSize {
			return malformed("MQTT-3.1.2-24", "maximum packet size 0")
		}
	case propVarInt:
		if u32 == 0 {
			return malformed("MQTT-3.8.2-2", "subscription identifier 0")
		}
	}
	switch id {
	case propPayloadFormat:
		p.PayloadFormat = b
	case propMessageExpiry:
		p.MessageExpiry = u32
	case propContentType:
		p.ContentType = s
	case propResponseTopic:
		p.ResponseTopic = s
	case propCorrelationData:
		p.CorrelationData = bin
	case propSubscriptionID:
		p.SubscriptionIDs = append(p.SubscriptionIDs, u32)
	case propSessionExpiry:
		p.SessionExpiry = u32
	case propAssignedClientID:
		p.AssignedClientID = s
	case propServerKeepAlive:
		p.ServerKeepAlive = u16
	case propAuthMethod:
		p.AuthMethod = s
	case propAuthData:
		p.AuthData = bin
	case propRequestProblemInfo:
		p.RequestProblemInfo = b
	case propWillDelay:
		p.WillDelay = u32
	case propRequestResponseInfo:
		p.RequestResponseInfo = b
	case propResponseInfo:
		p.ResponseInfo = s
	case propServerReference:
		p.ServerReference = s
	case propReasonString:
		p.ReasonString = s
	case propReceiveMaximum:
		p.ReceiveMaximum = u16
	case propTopicAliasMaximum:
		p.TopicAliasMaximum = u16
	case propTopicAlias:
		p.TopicAlias = u16
	case propMaximumQoS:
		p.MaximumQoS = b
	case propRetainAvailable:
		p.RetainAvailable = b
	case propMaximumPacketSize:
		p.MaximumPacketSize = u32
	case propWildcardAvailable:
		p.WildcardAvailable = b
	case propSubIDAvailable:
		p.SubIDAvailable = b
	case propSharedAvailable:
		p.SharedAvailable = b
	}
	return nil
}

// appendVarInt appends n as a Variable Byte Integer.
func appendVarInt(dst []byte, n uint32) []byte { return appendRemainingLength(dst, int(n)) }

// bodySize is the encoded size of p's properties without the length,
// computed without encoding them.
func (p *properties) bodySize() int {
	n := 0
	for id := byte(1); id < byte(len(propertySpecs)); id++ {
		if !p.has(id) {
			continue
		}
		switch propertySpecs[id].typ {
		case propByte:
			n += 2
		case propUint16:
			n += 3
		case propUint32:
			n += 5
		case propVarInt: // only Subscription Identifier repeats
			for _, v := range p.SubscriptionIDs {
				n += 1 + remainingLengthSize(int(v))
			}
		case propString, propBinary:
			n += 3 + p.variableLen(id)
		case propStringPair:
			for _, u := range p.User {
				n += 5 + len(u.Name) + len(u.Value)
			}
		}
	}
	return n
}

// variableLen is the length of the string or binary value of id.
func (p *properties) variableLen(id byte) int {
	switch id {
	case propContentType:
		return len(p.ContentType)
	case propResponseTopic:
		return len(p.ResponseTopic)
	case propCorrelationData:
		return len(p.CorrelationData)
	case propAssignedClientID:
		return len(p.AssignedClientID)
	case propAuthMethod:
		return len(p.AuthMethod)
	case propAuthData:
		return len(p.AuthData)
	case propResponseInfo:
		return len(p.ResponseInfo)
	case propServerReference:
		return len(p.ServerReference)
	case propReasonString:
		return len(p.ReasonString)
	}
	return 0
}

// appendProperties appends the property length and the properties, in
// identifier order; nil p encodes as length 0.
func appendProperties(dst []byte, p *properties) []byte {
	if p == nil {
		return append(dst, 0)
	}
	dst = appendVarInt(dst, uint32(p.bodySize()))
	return p.appendBody(dst)
}

// propertiesSize is the encoded size of p, length included.
func propertiesSize(p *properties) int {
	if p == nil {
		return 1
	}
	n := p.bodySize()
	return remainingLengthSize(n) + n
}

func (p *properties) appendBody(dst []byte) []byte {
	for id := byte(1); id < byte(len(propertySpecs)); id++ {
		if !p.has(id) {
			continue
		}
		switch id {
		case propUserProperty:
			for _, u := range p.User {
				dst = append(dst, id)
				dst = appendString(dst, u.Name)
				dst = appendString(dst, u.Value)
			}
			continue
		case propSubscriptionID:
			for _, v := range p.SubscriptionIDs {
				dst = appendVarInt(append(dst, id), v)
			}
			continue
		}
		dst = append(dst, id)
		switch id {
		case propPayloadFormat:
			dst = append(dst, p.PayloadFormat)
		case propMessageExpiry:
			dst = binary.BigEndian.AppendUint32(dst, p.MessageExpiry)
		case propContentType:
			dst = appendString(dst, p.ContentType)
		case propResponseTopic:
			dst = appendString(dst, p.ResponseTopic)
		case propCorrelationData:
			dst = appendBinary(dst, p.CorrelationData)
		case propSessionExpiry:
			dst = binary.BigEndian.AppendUint32(dst, p.SessionExpiry)
		case propAssignedClientID:
			dst = appendString(dst, p.AssignedClientID)
		case propServerKeepAlive:
			dst = appendUint16(dst, p.ServerKeepAlive)
		case propAuthMethod:
			dst = appendString(dst, p.AuthMethod)
		case propAuthData:
			dst = appendBinary(dst, p.AuthData)
		case propRequestProblemInfo:
			dst = append(dst, p.RequestProblemInfo)
		case propWillDelay:
			dst = binary.BigEndian.AppendUint32(dst, p.WillDelay)
		case propRequestResponseInfo:
			dst = append(dst, p.RequestResponseInfo)
		case propResponseInfo:
			dst = appendString(dst, p.ResponseInfo)
		case propServerReference:
			dst = appendString(dst, p.ServerReference)
		case propReasonString:
			dst = appendString(dst, p.ReasonString)
		case propReceiveMaximum:
			dst = appendUint16(dst, p.ReceiveMaximum)
		case propTopicAliasMaximum:
			dst = appendUint16(dst, p.TopicAliasMaximum)
		case propTopicAlias:
			dst = appendUint16(dst, p.TopicAlias)
		case propMaximumQoS:
			dst = append(dst, p.MaximumQoS)
		case propRetainAvailable:
			dst = append(dst, p.RetainAvailable)
		case propMaximumPacketSize:
			dst = binary.BigEndian.AppendUint32(dst, p.MaximumPacketSize)
		case propWildcardAvailable:
			dst = append(dst, p.WildcardAvailable)
		case propSubIDAvailable:
			dst = append(dst, p.SubIDAvailable)
		case propSharedAvailable:
			dst = append(dst, p.SharedAvailable)
		}
	}
	return dst
}

// forwarded returns the properties of an application message that travel
// on to its subscribers [MQTT-3.3.2-4..20]: everything but the Topic Alias
// and the Subscription Identifiers, which belong to one connection, and a
// will's Will Delay Interval. nil when nothing remains.
func (p *properties) forwarded() *properties {
	if p == nil {
		return nil
	}
	keep := p.present &^ (1<<propTopicAlias | 1<<propSubscriptionID | 1<<propWillDelay)
	if keep == 0 {
		return nil
	}
	if keep == p.present {
		return p
	}
	q := *p
	q.present, q.TopicAlias, q.SubscriptionIDs, q.WillDelay = keep, 0, nil, 0
	q.User = slices.Clip(q.User)
	return &q
}

// cost estimates the heap bytes of p for the memory budgets: the struct,
// its strings and slices. nil costs nothing.
func (p *properties) cost() int {
	if p == nil {
		return 0
	}
	n := propertiesOverhead + len(p.ContentType) + len(p.ResponseTopic) + len(p.CorrelationData) +
		len(p.AuthMethod) + len(p.AuthData) + len(p.ResponseInfo) + len(p.ServerReference) +
		len(p.ReasonString) + len(p.AssignedClientID) + 4*len(p.SubscriptionIDs)
	for _, u := range p.User {
		n += 32 + len(u.Name) + len(u.Value)
	}
	return n
}

// propertiesOverhead is the size of the properties struct itself, rounded up.
const propertiesOverhead = 320

// expired reports whether a message with these properties has outlived
// its Message Expiry Interval at now (Unix ns) [MQTT-3.3.2-5].
func (p *properties) expired(now int64) bool {
	return p.has(propMessageExpiry) && now >= p.expiresAt
}

// at returns the properties to send at now: the Message Expiry Interval
// lowered by the time the message waited in the broker [MQTT-3.3.2-6].
func (p *properties) at(now int64) *properties {
	if !p.has(propMessageExpiry) {
		return p
	}
	left := uint32(max((p.expiresAt-now+int64(time.Second)-1)/int64(time.Second), 1))
	if left >= p.MessageExpiry {
		return p
	}
	q := *p
	q.MessageExpiry = left
	return &q
}

// withSubscriptionIDs returns p with ids as its Subscription Identifiers
// (p itself when there are none); p may be nil.
func (p *properties) withSubscriptionIDs(ids []uint32) *properties {
	if len(ids) == 0 {
		return p
	}
	q := &properties{}
	if p != nil {
		*q = *p
	}
	q.SubscriptionIDs = ids
	q.set(propSubscriptionID)
	return q
}
