package main

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Raw MQTT 3.1.1 packets for the load scenarios: encoded by hand into
// reused buffers, so the load tool spends its CPU on the wire and not on a
// client library.

const (
	mqttConnect   = 0x10
	mqttConnack   = 0x20
	mqttPublish   = 0x30
	mqttPuback    = 0x40
	mqttSubscribe = 0x82 // with the reserved flags of [MQTT-3.8.1-1]
	mqttSuback    = 0x90
)

// appendRemainingLength appends the variable-length Remaining Length.
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

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// Protocol levels the scenarios speak: 3.1.1 by default, or MQTT 5.0.
const (
	level311 byte = 4
	level5   byte = 5
)

// appendConnect appends a CONNECT with clean session (Clean Start) and no
// credentials, at protocol level 4 or 5 (then with no properties).
func appendConnect(b []byte, level byte, clientID string, keepalive uint16) []byte {
	n := 10 + 2 + len(clientID)
	if level == level5 {
		n++ // the properties' length, 0
	}
	b = append(b, mqttConnect)
	b = appendRemainingLength(b, n)
	b = appendString(b, "MQTT")
	b = append(b, level, 0x02) // clean session / Clean Start
	b = binary.BigEndian.AppendUint16(b, keepalive)
	if level == level5 {
		b = append(b, 0)
	}
	return appendString(b, clientID)
}

// parseLevel reads a -protocol flag: 4 (MQTT 3.1.1) or 5 (MQTT 5.0).
func parseLevel(v int) (byte, error) {
	if v != int(level311) && v != int(level5) {
		return 0, fmt.Errorf("-protocol %d: want 4 (MQTT 3.1.1) or 5 (MQTT 5.0)", v)
	}
	return byte(v), nil
}

// appendPublish appends a PUBLISH; id is used for QoS 1 and 2 only.
func appendPublish(b []byte, topic string, qos byte, id uint16, payload []byte) []byte {
	n := 2 + len(topic) + len(payload)
	if qos > 0 {
		n += 2
	}
	b = append(b, mqttPublish|qos<<1)
	b = appendRemainingLength(b, n)
	b = appendString(b, topic)
	if qos > 0 {
		b = binary.BigEndian.AppendUint16(b, id)
	}
	return append(b, payload...)
}

// appendPuback appends a PUBACK for id.
func appendPuback(b []byte, id uint16) []byte {
	return append(b, mqttPuback, 2, byte(id>>8), byte(id))
}

// appendSubscribe appends a SUBSCRIBE of one filter.
func appendSubscribe(b []byte, id uint16, filter string, qos byte) []byte {
	b = append(b, mqttSubscribe)
	b = appendRemainingLength(b, 2+2+len(filter)+1)
	b = binary.BigEndian.AppendUint16(b, id)
	b = appendString(b, filter)
	return append(b, qos)
}

var disconnectPacket = []byte{0xE0, 0x00}

// errShortPacket: the buffer ends inside a packet; read more.
var errShortPacket = errors.New("short packet")

// nextPacket splits the first packet off buf: its first header byte, its
// body and its total length. It returns errShortPacket while incomplete.
func nextPacket(buf []byte) (first byte, body []byte, total int, err error) {
	if len(buf) < 2 {
		return 0, nil, 0, errShortPacket
	}
	n, mult := 0, 1
	i := 1
	for ; ; i++ {
		if i >= len(buf) {
			return 0, nil, 0, errShortPacket
		}
		if i > 4 {
			return 0, nil, 0, fmt.Errorf("malformed remaining length")
		}
		n += int(buf[i]&0x7f) * mult
		mult *= 128
		if buf[i]&0x80 == 0 {
			break
		}
	}
	total = i + 1 + n
	if total > len(buf) {
		return 0, nil, 0, errShortPacket
	}
	return buf[0], buf[i+1 : total], total, nil
}

// mqttDial connects to addr, optionally from the loopback address local,
// and completes CONNECT/CONNACK; it returns how long the broker took from
// CONNECT written to CONNACK read.
func mqttDial(addr string, local net.Addr, clientID string, keepalive uint16, timeout time.Duration, scratch []byte) (net.Conn, time.Duration, error) {
	return mqttDialTLS(addr, local, nil, level311, clientID, keepalive, timeout, scratch)
}

// mqttDialTLS is mqttDial over TLS with tlsConf (nil: plain TCP) at
// protocol level (4 or 5); the handshake is done before CONNECT and counts
// in the dial, not in the latency returned.
func mqttDialTLS(addr string, local net.Addr, tlsConf *tls.Config, level byte, clientID string, keepalive uint16, timeout time.Duration, scratch []byte) (net.Conn, time.Duration, error) {
	d := net.Dialer{Timeout: timeout, LocalAddr: local}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, 0, fmt.Errorf("dial %s: %w", addr, err)
	}
	conn.SetDeadline(time.Now().Add(timeout))
	if tlsConf != nil {
		tc := tls.Client(conn, tlsConf)
		if err := tc.Handshake(); err != nil {
			conn.Close()
			return nil, 0, fmt.Errorf("tls handshake with %s: %w", addr, err)
		}
		conn = tc
	}
	start := time.Now()
	if _, err := conn.Write(appendConnect(scratch[:0], level, clientID, keepalive)); err != nil {
		conn.Close()
		return nil, 0, fmt.Errorf("send CONNECT: %w", err)
	}
	// A 3.1.1 CONNACK is 4 bytes; a v5 one carries properties after its
	// reason code, so read its remaining length first.
	first, body, err := readPacket(conn, scratch[:0])
	if err != nil {
		conn.Close()
		return nil, 0, fmt.Errorf("read CONNACK for %s: %w", clientID, err)
	}
	took := time.Since(start)
	if first != mqttConnack || len(body) < 2 || body[1] != 0 || (level == level311 && len(body) != 2) {
		conn.Close()
		return nil, 0, fmt.Errorf("CONNACK for %s: %02x % x", clientID, first, body)
	}
	conn.SetDeadline(time.Time{})
	return conn, took, nil
}

// loopbackSource returns the i-th local address 127.0.0.2 … 127.0.0.251:
// spreading connections over many source addresses keeps a fast
// connect/close loop clear of ephemeral port exhaustion.
func loopbackSource(i int) *net.TCPAddr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%250))}
}

// readPacket reads one whole packet from r into buf: its first header
// byte and its body.
func readPacket(r io.Reader, buf []byte) (first byte, body []byte, err error) {
	var b [1]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, nil, err
	}
	first = b[0]
	n, mult := 0, 1
	for i := 0; ; i++ {
		if i == 4 {
			return 0, nil, errors.New("malformed remaining length")
		}
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		n += int(b[0]&0x7f) * mult
		mult *= 128
		if b[0]&0x80 == 0 {
			break
		}
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	body = buf[:n]
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return first, body, nil
}
