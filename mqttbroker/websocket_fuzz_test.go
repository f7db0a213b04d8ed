package mqttbroker

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// chunkConn is a net.Conn that returns data in reads of at most chunk
// bytes and discards writes.
type chunkConn struct {
	net.Conn // nil: only the methods below are used
	data     []byte
	chunk    int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.chunk)], c.data)
	c.data = c.data[n:]
	return n, nil
}
func (c *chunkConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *chunkConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzWebSocketDecode feeds arbitrary bytes, cut into reads of any size,
// through the frame decoder: it never panics, never returns more payload
// than it was given, and ends only with EOF or a protocol error.
func FuzzWebSocketDecode(f *testing.F) {
	connect := encodePacket(&connectPacket{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "fuzz", CleanSession: true})
	f.Add(frame(true, wsBinary, connect), uint8(1))
	f.Add(append(frame(false, wsBinary, connect[:4]), append(frame(true, wsPing, []byte("p")), frame(true, wsContinuation, connect[4:])...)...), uint8(3))
	f.Add(frame(true, wsBinary, make([]byte, 300)), uint8(200))
	f.Add(frame(true, wsText, []byte("x")), uint8(7))
	f.Add(frame(true, wsClose, []byte{3, 232}), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		ws := newWSConn(&chunkConn{data: data, chunk: int(chunk)%64 + 1}, nil, 1024)
		buf := make([]byte, 97)
		total := 0
		for {
			n, err := ws.Read(buf)
			total += n
			if total > len(data) {
				t.Fatalf("%d payload bytes from %d input bytes", total, len(data))
			}
			if err != nil {
				if !errors.Is(err, io.EOF) && !isProtocolError(err) {
					t.Fatalf("error %v is neither EOF nor a protocol error", err)
				}
				return
			}
		}
	})
}
