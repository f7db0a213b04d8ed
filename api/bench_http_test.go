package api

import (
	"bufio"
	"io"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkOnlineOverTCP measures the lookup through a real HTTP server on
// loopback with keep-alive connections (client and server in one process).
func BenchmarkOnlineOverTCP(b *testing.B) {
	s := benchServer(b, 100_000)
	ts := httptest.NewServer(s)
	defer ts.Close()
	addr := strings.TrimPrefix(ts.URL, "http://")
	b.ReportAllocs()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		req := []byte("GET /clients/GID_bench@@@dev-4242/online HTTP/1.1\r\nHost: x\r\n\r\n")
		for pb.Next() {
			if _, err := conn.Write(req); err != nil {
				b.Error(err)
				return
			}
			length := 0
			for {
				line, err := r.ReadSlice('\n')
				if err != nil {
					b.Error(err)
					return
				}
				if len(line) <= 2 {
					break
				}
				if k, v, ok := strings.Cut(string(line), ":"); ok && k == "Content-Length" {
					length, _ = strconv.Atoi(strings.TrimSpace(v))
				}
			}
			if _, err := io.CopyN(io.Discard, r, int64(length)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
