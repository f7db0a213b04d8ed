package rocketmqfake

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"encoding/hex"
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
	body             []byte // as sent: compressed when sysFlag says so
	props            map[string]string
	propsRaw         string
	wire             []byte // the encoded record served to PULL_MESSAGE
}

// parseProperties splits "k\x01v\x02k\x01v\x02".
func parseProperties(s string) map[string]string {
	m := map[string]string{}
	for _, item := range strings.Split(s, string(propertySep)) {
		if k, v, ok := strings.Cut(item, string(nameValueSep)); ok && k != "" {
			m[k] = v
		}
	}
	return m
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

// setProps replaces the properties (and their wire string).
func (m *storedMsg) setProps(p map[string]string) {
	m.props = p
	m.propsRaw = formatProperties(p)
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

// encode renders the record exactly as primitive.DecodeMessage (and the
// Java MessageDecoder) reads it: the commit-log v1 layout.
func (m *storedMsg) encode() []byte {
	size := m.encodedSize()
	sysFlag := m.sysFlag &^ (msgFlagBornHostV6 | msgFlagStoreHostV6)
	if m.bornHost.v6() {
		sysFlag |= msgFlagBornHostV6
	}
	if m.storeHost.v6() {
		sysFlag |= msgFlagStoreHostV6
	}
	// Appended field by field into a buffer of the exact size: the fake
	// encodes every message it stores, so this is on its hot path.
	be := binary.BigEndian
	b := make([]byte, 0, size)
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

// offsetMsgID is the broker's message id: store ip, port and commit-log
// offset in upper-case hex (MessageDecoder.createMessageId).
func (m *storedMsg) offsetMsgID() string {
	return createMessageID(m.storeHost, m.phyOffset)
}

func createMessageID(h hostPort, phy int64) string {
	b := make([]byte, 0, len(h.ip)+12)
	b = append(b, h.ip...)
	b = binary.BigEndian.AppendUint32(b, uint32(h.port))
	b = binary.BigEndian.AppendUint64(b, uint64(phy))
	return strings.ToUpper(hex.EncodeToString(b))
}

// msgID is what the client reports as MessageExt.MsgId: the producer's
// UNIQ_KEY when present, else the offset message id.
func (m *storedMsg) msgID() string {
	if id := m.props[propUniqKey]; id != "" {
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
		props := string(rec[22+blen : 22+blen+plen])
		// The body aliases the request frame, which is never reused
		// (readCommand allocates each one): no copy.
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
	props := make(map[string]string, len(m.props))
	for k, v := range m.props {
		props[k] = v
	}
	body := m.body
	if m.sysFlag&msgFlagCompressed != 0 {
		if r, err := zlib.NewReader(bytes.NewReader(body)); err == nil {
			if raw, err := io.ReadAll(r); err == nil {
				body = raw
			}
		}
	}
	var keys []string
	if k := m.props[propKeys]; k != "" {
		keys = strings.Fields(k)
	}
	return Message{
		Topic: m.topic, QueueID: m.queueID, QueueOffset: m.queueOffset, CommitLogOffset: m.phyOffset,
		MsgID: m.msgID(), OffsetMsgID: m.offsetMsgID(), Tags: m.props[propTags], Keys: keys,
		Body: append([]byte(nil), body...), Properties: props, ReconsumeTimes: m.reconsumeTimes,
		Flag: m.flag, SysFlag: m.sysFlag, BornTime: time.UnixMilli(m.bornTS), StoreTime: time.UnixMilli(m.storeTS),
		BornHost: m.bornHost.String(),
	}
}
