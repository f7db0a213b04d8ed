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

// appendConnect appends a CONNECT with clean session and no credentials.
func appendConnect(b []byte, clientID string, keepalive uint16) []byte {
	b = append(b, mqttConnect)
	b = appendRemainingLength(b, 10+2+len(clientID))
	b = appendString(b, "MQTT")
	b = append(b, 4, 0x02) // level 4 (3.1.1), clean session
	b = binary.BigEndian.AppendUint16(b, keepalive)
	return appendString(b, clientID)
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
	return mqttDialTLS(addr, local, nil, clientID, keepalive, timeout, scratch)
}

// mqttDialTLS is mqttDial over TLS with tlsConf (nil: plain TCP); the
// handshake is done before CONNECT and counts in the dial, not in the
// latency returned.
func mqttDialTLS(addr string, local net.Addr, tlsConf *tls.Config, clientID string, keepalive uint16, timeout time.Duration, scratch []byte) (net.Conn, time.Duration, error) {
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
	if _, err := conn.Write(appendConnect(scratch[:0], clientID, keepalive)); err != nil {
		conn.Close()
		return nil, 0, fmt.Errorf("send CONNECT: %w", err)
	}
	var ack [4]byte
	if _, err := io.ReadFull(conn, ack[:]); err != nil {
		conn.Close()
		return nil, 0, fmt.Errorf("read CONNACK for %s: %w", clientID, err)
	}
	took := time.Since(start)
	if ack[0] != mqttConnack || ack[3] != 0 {
		conn.Close()
		return nil, 0, fmt.Errorf("CONNACK for %s: % x", clientID, ack)
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
