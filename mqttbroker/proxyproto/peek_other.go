//go:build !unix

package proxyproto

import (
	"errors"
	"syscall"
)

// Without MSG_PEEK the listener reads the header and keeps what follows.
const canPeek = false

func peek(syscall.RawConn, []byte, int) (int, error) {
	return 0, errors.New("proxyproto: peek unsupported")
}
