package test

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// Raw MQTT 3.1.1 packets for tests that must control every byte.

// appendString appends an MQTT UTF-8 string (2-byte length prefix).
func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// appendRemainingLength appends the variable-length remaining length.
func appendRemainingLength(b []byte, n int) []byte {
	for {
		digit := byte(n % 128)
		n /= 128
		if n > 0 {
			digit |= 0x80
		}
		b = append(b, digit)
		if n == 0 {
			return b
		}
	}
}

// connectPacket builds a CONNECT with clean session and the given keepalive.
func connectPacket(clientID string, keepalive uint16) []byte {
	body := appendString(nil, "MQTT")
	body = append(body, 4, 0x02) // level 4, clean session
	body = binary.BigEndian.AppendUint16(body, keepalive)
	body = appendString(body, clientID)
	pkt := appendRemainingLength([]byte{0x10}, len(body))
	return append(pkt, body...)
}

var (
	disconnectPacket = []byte{0xE0, 0x00}
	pingreqPacket    = []byte{0xC0, 0x00}
)

// rawConnect dials the broker, sends CONNECT and returns the connection and
// the CONNACK return code.
func rawConnect(t *testing.T, addr, clientID string, keepalive uint16) (net.Conn, byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Write(connectPacket(clientID, keepalive)); err != nil {
		t.Fatalf("send CONNECT: %v", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var connack [4]byte
	if _, err := io.ReadFull(conn, connack[:]); err != nil {
		t.Fatalf("read CONNACK for %q: %v", clientID, err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	if connack[0] != 0x20 || connack[1] != 0x02 {
		t.Fatalf("CONNACK header % x, want 20 02", connack[:2])
	}
	return conn, connack[3]
}

// abortClose closes conn with a TCP RST, as a crashed client would.
func abortClose(conn net.Conn) {
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	conn.Close()
}

// waitClosed waits until the server closes conn.
func waitClosed(t *testing.T, conn net.Conn, timeout time.Duration) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 64)
	for {
		if _, err := conn.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("server did not close the connection within %v", timeout)
			}
			return
		}
	}
}
