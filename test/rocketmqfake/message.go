package rocketmqfake

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Property separators of the properties string (MessageDecoder).
const (
	nameValueSep = '\x01'
	propertySep  = '\x02'
)

// hostPort is a born/store host as the message layout carries it.
type hostPort struct {
	ip   net.IP
	port int
}

func parseHostPort(addr string) hostPort {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return hostPort{ip: net.IPv4(127, 0, 0, 1).To4()}
	}
	p, _ := strconv.Atoi(port)
	ip := net.ParseIP(host)
	if ip == nil {
		ip = net.IPv4(127, 0, 0, 1)
	}
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	return hostPort{ip: ip, port: p}
}

func (h hostPort) v6() bool { return len(h.ip) == net.IPv6len }

func (h hostPort) String() string { return net.JoinHostPort(h.ip.String(), strconv.Itoa(h.port)) }

// storedMsg is one message in a queue.
type storedMsg struct {
	topic            string
	queueID          int
	queueOffset      int64
	phyOffset        int64 // commit-log offset: unique, increasing, byte-sized steps
	flag             int32
	sysFlag          int32
	bornTS           int64 // ms
	bornHost         hostPort
	storeTS          int64 // ms
	storeHost        hostPort
	reconsumeTimes   int32
	preparedTxOffset int64
	// body is as sent (compressed when sysFlag says so). propsRaw, the
	// properties in their wire form, is the only copy of the properties:
	// most messages are stored and pulled without anyone reading more than
	// their tag, so no map is built for them (see properties). Once the
	// message is encoded both point into wire.
	body     []byte
	propsRaw string
	tags     string // TAGS, cached for the pull filter
	wire     []byte // the encoded record served to PULL_MESSAGE
}

// parseProperties splits "k\x01v\x02k\x01v\x02". A key given twice keeps
// its last value.
func parseProperties(s string) map[string]string {
	m := map[string]string{}
	for s != "" {
		var item string
		item, s, _ = strings.Cut(s, string(propertySep))
		if k, v, ok := strings.Cut(item, string(nameValueSep)); ok && k != "" {
			m[k] = v
		}
	}
	return m
}

// propValue is parseProperties(raw)[key] without building the map. key
// must not be empty or contain a separator (the prop* constants).
func propValue(raw, key string) (value string, ok bool) {
	for raw != "" {
		var item string
		item, raw, _ = strings.Cut(raw, string(propertySep))
		if len(item) > len(key) && item[len(key)] == nameValueSep && item[:len(key)] == key {
			value, ok = item[len(key)+1:], true // no break: the last one wins, as in the map
		}
	}
	return value, ok
}

// formatProperties renders m in the wire format, keys sorted so results are
// reproducible.
func formatProperties(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(nameValueSep)
		b.WriteString(m[k])
		b.WriteByte(propertySep)
	}
	return b.String()
}

// properties returns a fresh map of m's properties.
func (m *storedMsg) properties() map[string]string { return parseProperties(m.propsRaw) }

// setProps replaces the properties with p, rendered in the wire format.
func (m *storedMsg) setProps(p map[string]string) { m.setPropsRaw(formatProperties(p)) }

// setPropsRaw replaces the properties' wire string and what is cached from it.
func (m *storedMsg) setPropsRaw(raw string) {
	m.propsRaw = raw
	m.tags, _ = propValue(raw, propTags)
}

// encodedSize is the record size of the commit-log layout.
func (m *storedMsg) encodedSize() int {
	hostLen := func(h hostPort) int {
		if h.v6() {
			return 16 + 4
		}
		return 4 + 4
	}
	return 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + hostLen(m.bornHost) + 8 + hostLen(m.storeHost) +
		4 + 8 + 4 + len(m.body) + 1 + len(m.topic) + 2 + len(m.propsRaw)
}

// appendRecord appends the record exactly as primitive.DecodeMessage (and
// the Java MessageDecoder) reads it: the commit-log v1 layout,
// encodedSize() bytes.
func (m *storedMsg) appendRecord(b []byte) []byte {
	size := m.encodedSize()
	sysFlag := m.sysFlag &^ (msgFlagBornHostV6 | msgFlagStoreHostV6)
	if m.bornHost.v6() {
		sysFlag |= msgFlagBornHostV6
	}
	if m.storeHost.v6() {
		sysFlag |= msgFlagStoreHostV6
	}
	// Appended field by field: the fake encodes every message it stores,
	// so this is on its hot path.
	be := binary.BigEndian
	b = be.AppendUint32(b, uint32(size))
	magic := int32(messageMagicCode)
	b = be.AppendUint32(b, uint32(magic))
	b = be.AppendUint32(b, crc32.ChecksumIEEE(m.body)&0x7FFFFFFF)
	b = be.AppendUint32(b, uint32(m.queueID))
	b = be.AppendUint32(b, uint32(m.flag))
	b = be.AppendUint64(b, uint64(m.queueOffset))
	b = be.AppendUint64(b, uint64(m.phyOffset))
	b = be.AppendUint32(b, uint32(sysFlag))
	b = be.AppendUint64(b, uint64(m.bornTS))
	b = append(b, m.bornHost.ip...)
	b = be.AppendUint32(b, uint32(m.bornHost.port))
	b = be.AppendUint64(b, uint64(m.storeTS))
	b = append(b, m.storeHost.ip...)
	b = be.AppendUint32(b, uint32(m.storeHost.port))
	b = be.AppendUint32(b, uint32(m.reconsumeTimes))
	b = be.AppendUint64(b, uint64(m.preparedTxOffset))
	b = be.AppendUint32(b, uint32(len(m.body)))
	b = append(b, m.body...)
	b = append(b, byte(len(m.topic)))
	b = append(b, m.topic...)
	b = be.AppendUint16(b, uint16(len(m.propsRaw)))
	b = append(b, m.propsRaw...)
	return b
}

// encodeInto renders m's record into memory from a, keeps it as m.wire
// and points body and propsRaw into it: their previous backing (the
// request frame, a rewritten properties string) can then be freed, and
// the store holds each message's bytes once.
func (m *storedMsg) encodeInto(a *recordArena) {
	rec := m.appendRecord(a.alloc(m.encodedSize()))
	// The record ends BODY TOPICLEN(1) TOPIC PROPLEN(2) PROPS.
	propsAt := len(rec) - len(m.propsRaw)
	bodyEnd := propsAt - 2 - len(m.topic) - 1
	m.wire = rec
	m.body = rec[bodyEnd-len(m.body) : bodyEnd : bodyEnd]
	m.setPropsRaw(viewString(rec[propsAt:]))
}

// offsetMsgID is the broker's message id: store ip, port and commit-log
// offset in upper-case hex (MessageDecoder.createMessageId).
func (m *storedMsg) offsetMsgID() string {
	return createMessageID(m.storeHost, m.phyOffset)
}

func createMessageID(h hostPort, phy int64) string {
	return string(appendMessageID(make([]byte, 0, 2*(len(h.ip)+12)), h, phy))
}

// appendMessageID appends createMessageID(h, phy): a send answer carries
// one id per message, so they are rendered into one buffer.
func appendMessageID(b []byte, h hostPort, phy int64) []byte {
	const hexUpper = "0123456789ABCDEF"
	raw := make([]byte, 0, net.IPv6len+12)
	raw = append(raw, h.ip...)
	raw = binary.BigEndian.AppendUint32(raw, uint32(h.port))
	raw = binary.BigEndian.AppendUint64(raw, uint64(phy))
	for _, c := range raw {
		b = append(b, hexUpper[c>>4], hexUpper[c&0x0F])
	}
	return b
}

// msgID is what the client reports as MessageExt.MsgId: the producer's
// UNIQ_KEY when present, else the offset message id.
func (m *storedMsg) msgID() string {
	if id, _ := propValue(m.propsRaw, propUniqKey); id != "" {
		return id
	}
	return m.offsetMsgID()
}

// batchItem is one message of a SEND_BATCH_MESSAGE body.
type batchItem struct {
	flag  int32
	body  []byte
	props string
}

// decodeBatch splits a batch body: per message TOTALSIZE MAGICCODE BODYCRC
// FLAG BODYLEN BODY PROPLEN(int16) PROPS (MessageDecoder.encodeMessage).
func decodeBatch(data []byte) ([]batchItem, error) {
	items := make([]batchItem, 0, countBatchRecords(data))
	for pos := 0; pos < len(data); {
		if len(data)-pos < 20 {
			return nil, fmt.Errorf("truncated batch record at %d", pos)
		}
		total := int(binary.BigEndian.Uint32(data[pos:]))
		if total < 22 || pos+total > len(data) {
			return nil, fmt.Errorf("bad batch record size %d at %d", total, pos)
		}
		rec := data[pos : pos+total]
		flag := int32(binary.BigEndian.Uint32(rec[12:]))
		blen := int(binary.BigEndian.Uint32(rec[16:]))
		if 20+blen+2 > total {
			return nil, fmt.Errorf("bad batch body length %d", blen)
		}
		body := rec[20 : 20+blen]
		plen := int(binary.BigEndian.Uint16(rec[20+blen:]))
		if 22+blen+plen > total {
			return nil, fmt.Errorf("bad batch properties length %d", plen)
		}
		// Body and properties alias the request frame, which is never
		// written again (readCommand allocates each one): no copies.
		props := viewString(rec[22+blen : 22+blen+plen])
		items = append(items, batchItem{flag: flag, body: body[:len(body):len(body)], props: props})
		pos += total
	}
	return items, nil
}

// countBatchRecords counts the records of a batch body by their sizes
// alone (decodeBatch checks them), to size its result once.
func countBatchRecords(data []byte) int {
	n := 0
	for pos := 0; len(data)-pos >= 4; n++ {
		total := int(binary.BigEndian.Uint32(data[pos:]))
		if total <= 0 {
			break
		}
		pos += total
	}
	return n
}

// Message is a stored message as tests inspect it.
type Message struct {
	Topic           string
	QueueID         int
	QueueOffset     int64
	CommitLogOffset int64
	// MsgID is what the client sees as MessageExt.MsgId (the producer's
	// UNIQ_KEY, else OffsetMsgID); OffsetMsgID is the broker's id.
	MsgID       string
	OffsetMsgID string
	Tags        string
	Keys        []string
	// Body is decompressed if the producer compressed it.
	Body           []byte
	Properties     map[string]string
	ReconsumeTimes int32
	Flag           int32
	SysFlag        int32
	BornTime       time.Time
	StoreTime      time.Time
	BornHost       string
}

func (m *storedMsg) export() Message {
	props := m.properties()
	body := m.body
	if m.sysFlag&msgFlagCompressed != 0 {
		if r, err := zlib.NewReader(bytes.NewReader(body)); err == nil {
			if raw, err := io.ReadAll(r); err == nil {
				body = raw
			}
		}
	}
	var keys []string
	if k := props[propKeys]; k != "" {
		keys = strings.Fields(k)
	}
	return Message{
		Topic: m.topic, QueueID: m.queueID, QueueOffset: m.queueOffset, CommitLogOffset: m.phyOffset,
		MsgID: m.msgID(), OffsetMsgID: m.offsetMsgID(), Tags: props[propTags], Keys: keys,
		Body: append([]byte(nil), body...), Properties: props, ReconsumeTimes: m.reconsumeTimes,
		Flag: m.flag, SysFlag: m.sysFlag, BornTime: time.UnixMilli(m.bornTS), StoreTime: time.UnixMilli(m.storeTS),
		BornHost: m.bornHost.String(),
	}
}
