package rocketmqfake

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Serialize types carried in the top byte of the header-length word.
const (
	serializeJSON     = byte(0)
	serializeRocketMQ = byte(1)
)

// Flag bits of a RemotingCommand.
const (
	flagResponse = int32(1) // bit 0: this command is a response
	flagOneway   = int32(2) // bit 1: the sender expects no response
)

// maxFrame bounds one frame, like the broker's 16 MiB default, so a garbage
// length prefix cannot make us allocate gigabytes.
const maxFrame = 16 << 20

// command is the fake's view of a RocketMQ RemotingCommand.
//
// On the wire a command is
//
//	int32 total length (of everything after this field)
//	int32 serialize type (top byte) | header length (low 24 bits)
//	header (JSON, or the binary "ROCKETMQ" layout)
//	body (the rest)
type command struct {
	Code      int16
	Language  string
	Version   int16
	Opaque    int32
	Flag      int32
	Remark    string
	ExtFields map[string]string
	Body      []byte
	// records is more body after Body: a pull answer's stored records,
	// which conn.write hands to writev as they are instead of copying
	// them into one buffer.
	records [][]byte

	// serialize is the header encoding the command arrived in; responses
	// are written in the same one, which is what real brokers do.
	serialize byte
}

func (c *command) isResponse() bool { return c.Flag&flagResponse != 0 }
func (c *command) isOneway() bool   { return c.Flag&flagOneway != 0 }

// ext returns an extension field ("" when absent).
func (c *command) ext(key string) string {
	if c.ExtFields == nil {
		return ""
	}
	return c.ExtFields[key]
}

// extInt64 parses an integer extension field, returning def when absent or
// malformed.
func (c *command) extInt64(key string, def int64) int64 {
	v, err := strconv.ParseInt(c.ext(key), 10, 64)
	if err != nil {
		return def
	}
	return v
}

func (c *command) extInt(key string, def int) int {
	return int(c.extInt64(key, int64(def)))
}

// extFirst returns the first non-empty field among keys; SEND_MESSAGE_V2
// uses one-letter names for the fields SEND_MESSAGE spells out.
func (c *command) extFirst(keys ...string) string {
	for _, k := range keys {
		if v := c.ext(k); v != "" {
			return v
		}
	}
	return ""
}

// readCommand reads one frame. It returns io.EOF only on a clean end of
// stream between frames.
func readCommand(r io.Reader) (*command, error) {
	var lenBuf [4]byte
	if _, err := io.ReadFull(r, lenBuf[:]); err != nil {
		return nil, err
	}
	total := int32(binary.BigEndian.Uint32(lenBuf[:]))
	if total < 4 || total > maxFrame {
		return nil, fmt.Errorf("rocketmqfake: bad frame length %d", total)
	}
	frame := make([]byte, total)
	if _, err := io.ReadFull(r, frame); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return decodeFrame(frame)
}

// decodeFrame decodes a frame without its leading total-length field.
func decodeFrame(frame []byte) (*command, error) {
	if len(frame) < 4 {
		return nil, fmt.Errorf("rocketmqfake: short frame")
	}
	word := binary.BigEndian.Uint32(frame[:4])
	serialize := byte(word >> 24)
	hlen := int(word & 0xFFFFFF)
	if hlen > len(frame)-4 {
		return nil, fmt.Errorf("rocketmqfake: header length %d exceeds frame %d", hlen, len(frame))
	}
	header := frame[4 : 4+hlen]
	var (
		cmd *command
		err error
	)
	switch serialize {
	case serializeJSON:
		cmd, err = decodeJSONHeader(header)
	case serializeRocketMQ:
		cmd, err = decodeBinaryHeader(header)
	default:
		err = fmt.Errorf("rocketmqfake: unknown serialize type %d", serialize)
	}
	if err != nil {
		return nil, err
	}
	cmd.serialize = serialize
	if body := frame[4+hlen:]; len(body) > 0 {
		cmd.Body = body
	}
	return cmd, nil
}

// jsonHeader mirrors the JSON header. extFields values are decoded loosely:
// Go and Java clients send strings, but a number would not be a reason to
// drop the request.
type jsonHeader struct {
	Code      int16                      `json:"code"`
	Language  json.RawMessage            `json:"language,omitempty"`
	Version   int16                      `json:"version"`
	Opaque    int32                      `json:"opaque"`
	Flag      int32                      `json:"flag"`
	Remark    string                     `json:"remark,omitempty"`
	ExtFields map[string]json.RawMessage `json:"extFields,omitempty"`
}

func decodeJSONHeader(b []byte) (*command, error) {
	var h jsonHeader
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("rocketmqfake: json header: %w", err)
	}
	cmd := &command{
		Code: h.Code, Version: h.Version, Opaque: h.Opaque, Flag: h.Flag,
		Remark: h.Remark, ExtFields: make(map[string]string, len(h.ExtFields)),
	}
	var lang string
	if json.Unmarshal(h.Language, &lang) == nil {
		cmd.Language = lang
	}
	for k, raw := range h.ExtFields {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			cmd.ExtFields[k] = s
		} else {
			cmd.ExtFields[k] = string(raw)
		}
	}
	return cmd, nil
}

var languageNames = map[byte]string{0: "JAVA", 1: "CPP", 2: "DOTNET", 3: "PYTHON", 4: "DELPHI",
	5: "ERLANG", 6: "RUBY", 7: "OTHER", 8: "HTTP", 9: "GO", 10: "PHP", 11: "OMS"}

func decodeBinaryHeader(b []byte) (*command, error) {
	r := bytes.NewReader(b)
	var fixed struct {
		Code    int16
		Lang    byte
		Version int16
		Opaque  int32
		Flag    int32
	}
	if err := binary.Read(r, binary.BigEndian, &fixed); err != nil {
		return nil, fmt.Errorf("rocketmqfake: binary header: %w", err)
	}
	cmd := &command{Code: fixed.Code, Language: languageNames[fixed.Lang], Version: fixed.Version,
		Opaque: fixed.Opaque, Flag: fixed.Flag, ExtFields: map[string]string{}}
	remark, err := readLenString(r, 4)
	if err != nil {
		return nil, err
	}
	cmd.Remark = remark
	var extLen int32
	if err := binary.Read(r, binary.BigEndian, &extLen); err != nil {
		return nil, err
	}
	if extLen < 0 || int(extLen) > r.Len() {
		return nil, fmt.Errorf("rocketmqfake: ext fields length %d", extLen)
	}
	ext := make([]byte, extLen)
	_, _ = io.ReadFull(r, ext)
	er := bytes.NewReader(ext)
	for er.Len() > 0 {
		k, err := readLenString(er, 2)
		if err != nil {
			return nil, err
		}
		v, err := readLenString(er, 4)
		if err != nil {
			return nil, err
		}
		cmd.ExtFields[k] = v
	}
	return cmd, nil
}

// readLenString reads a string prefixed by a big-endian length of n bytes.
func readLenString(r *bytes.Reader, n int) (string, error) {
	var l int
	switch n {
	case 2:
		var v int16
		if err := binary.Read(r, binary.BigEndian, &v); err != nil {
			return "", err
		}
		l = int(v)
	default:
		var v int32
		if err := binary.Read(r, binary.BigEndian, &v); err != nil {
			return "", err
		}
		l = int(v)
	}
	if l < 0 || l > r.Len() {
		return "", fmt.Errorf("rocketmqfake: string length %d exceeds %d", l, r.Len())
	}
	buf := make([]byte, l)
	_, _ = io.ReadFull(r, buf)
	return string(buf), nil
}

// encodeHead renders the frame up to its body, header in c.serialize:
// lengths and header. The body follows as is (conn.write sends all parts
// with one writev, so a pull answer's messages are not copied once more).
func (c *command) encodeHead() ([]byte, error) {
	var header []byte
	switch c.serialize {
	case serializeRocketMQ:
		header = c.binaryHeader()
	default:
		h := map[string]any{
			"code": c.Code, "language": "JAVA", "version": c.Version, "opaque": c.Opaque,
			"flag": c.Flag, "serializeTypeCurrentRPC": "JSON",
		}
		if c.Remark != "" {
			h["remark"] = c.Remark
		}
		if len(c.ExtFields) > 0 {
			h["extFields"] = c.ExtFields
		}
		var err error
		if header, err = json.Marshal(h); err != nil {
			return nil, err
		}
	}
	out := make([]byte, 8, 8+len(header))
	binary.BigEndian.PutUint32(out[0:4], uint32(4+len(header)+c.bodyLen()))
	binary.BigEndian.PutUint32(out[4:8], uint32(c.serialize)<<24|uint32(len(header))&0xFFFFFF)
	out = append(out, header...)
	return out, nil
}

// bodyLen is the length of the body: Body and records.
func (c *command) bodyLen() int {
	n := len(c.Body)
	for _, r := range c.records {
		n += len(r)
	}
	return n
}

// encode renders the whole frame: encodeHead followed by the body.
func (c *command) encode() ([]byte, error) {
	head, err := c.encodeHead()
	if err != nil {
		return nil, err
	}
	frame := make([]byte, 0, len(head)+c.bodyLen())
	frame = append(append(frame, head...), c.Body...)
	for _, r := range c.records {
		frame = append(frame, r...)
	}
	return frame, nil
}

func (c *command) binaryHeader() []byte {
	var ext bytes.Buffer
	for k, v := range c.ExtFields {
		_ = binary.Write(&ext, binary.BigEndian, int16(len(k)))
		ext.WriteString(k)
		_ = binary.Write(&ext, binary.BigEndian, int32(len(v)))
		ext.WriteString(v)
	}
	var b bytes.Buffer
	_ = binary.Write(&b, binary.BigEndian, c.Code)
	b.WriteByte(0) // JAVA: we play the Java broker
	_ = binary.Write(&b, binary.BigEndian, c.Version)
	_ = binary.Write(&b, binary.BigEndian, c.Opaque)
	_ = binary.Write(&b, binary.BigEndian, c.Flag)
	_ = binary.Write(&b, binary.BigEndian, int32(len(c.Remark)))
	b.WriteString(c.Remark)
	_ = binary.Write(&b, binary.BigEndian, int32(ext.Len()))
	b.Write(ext.Bytes())
	return b.Bytes()
}

// brokerVersion is what we report in responses (the client records it per
// broker from heartbeat responses). 395 is RocketMQ 4.9.x's ordinal; any value
// at or above V4_1_0 enables tag filtering on the client.
const brokerVersion = int16(395)

// response builds a response to req with the given code and remark.
func response(req *command, code int16, remark string) *command {
	return &command{
		Code: code, Version: brokerVersion, Opaque: req.Opaque, Flag: flagResponse,
		Remark: remark, ExtFields: map[string]string{}, serialize: req.serialize,
	}
}
