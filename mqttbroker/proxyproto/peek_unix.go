//go:build unix

package proxyproto

import (
	"io"
	"syscall"
)

const canPeek = true

// peek waits until the socket holds at least min bytes (or len(buf)) and
// copies them into buf without consuming them (MSG_PEEK). A peek that finds
// too few bytes waits for the socket's next readiness, which only new
// bytes bring; the read deadline of the connection applies.
func peek(raw syscall.RawConn, buf []byte, min int) (int, error) {
	var n int
	var perr error
	err := raw.Read(func(fd uintptr) bool {
		for {
			m, _, e := syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK)
			switch {
			case e == syscall.EINTR:
				continue
			case e == syscall.EAGAIN:
				return false
			case e != nil:
				perr = e
				return true
			case m == 0:
				perr = io.EOF
				return true
			}
			n = m
			return m >= min || m == len(buf)
		}
	})
	if err != nil {
		return n, err
	}
	return n, perr
}
