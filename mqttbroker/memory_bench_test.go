package mqttbroker

import (
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkIdleConnectionMemory measures what an idle connection (CONNECT
// done, nothing subscribed) costs the broker: heap, goroutine stack and
// process RSS per connection. The clients are bare socket descriptors, so
// they add (almost) nothing to the process's Go memory.
//
//	go test -run '^$' -bench IdleConnectionMemory -benchtime 1x ./mqttbroker
//
// MQTTBROKER_IDLE_CONNS sets the number of connections (default 9000; each
// takes two descriptors in this process); MQTTBROKER_IDLE_LEVEL=5 connects
// them with MQTT 5.0 instead of 3.1.1.
func BenchmarkIdleConnectionMemory(b *testing.B) {
	n := 9000
	if v, err := strconv.Atoi(os.Getenv("MQTTBROKER_IDLE_CONNS")); err == nil && v > 0 {
		n = v
	}
	srv := New(Config{AllowAnonymous: true, Logger: discardLogger(), Node: "bench", Epoch: "e"}, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(b.Context())
	addr := ln.Addr().(*net.TCPAddr)
	sa := &syscall.SockaddrInet4{Port: addr.Port}
	copy(sa.Addr[:], addr.IP.To4())

	for range b.N {
		// Warm up the runtime with one connection so its one-time costs
		// are not counted.
		fds := []int{rawConnect(b, sa, "warm-up")}
		runtime.GC()
		debug.FreeOSMemory()
		before, rssBefore := memNow(), rssBytes()
		for i := range n {
			fds = append(fds, rawConnect(b, sa, "idle-"+strconv.Itoa(i)))
		}
		time.Sleep(200 * time.Millisecond)
		runtime.GC()
		runtime.GC() // the second cycle shrinks the stacks grown by CONNECT
		debug.FreeOSMemory()
		after, rssAfter := memNow(), rssBytes()
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/float64(n), "heap-B/conn")
		b.ReportMetric(float64(after.StackInuse-before.StackInuse)/float64(n), "stack-B/conn")
		b.ReportMetric(float64(rssAfter-rssBefore)/float64(n), "rss-B/conn")
		if path := os.Getenv("MQTTBROKER_HEAP_PROFILE"); path != "" {
			writeHeapProfile(b, path)
		}
		for _, fd := range fds {
			syscall.Close(fd)
		}
	}
}

func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}

func memNow() runtime.MemStats {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

// rssBytes reads the resident set size of this process.
func rssBytes() int64 {
	data, _ := os.ReadFile("/proc/self/status")
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// rawConnect opens a blocking socket, sends CONNECT and reads CONNACK.
func rawConnect(b *testing.B, sa *syscall.SockaddrInet4, clientID string) int {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		b.Fatal(err)
	}
	if err := syscall.Connect(fd, sa); err != nil {
		b.Fatal(err)
	}
	level := byte(4)
	if os.Getenv("MQTTBROKER_IDLE_LEVEL") == "5" {
		level = 5
	}
	wire := encodePacket(&connectPacket{ProtocolName: "MQTT", ProtocolLevel: level, ClientID: clientID, CleanSession: true})
	if _, err := syscall.Write(fd, wire); err != nil {
		b.Fatal(err)
	}
	var ack [64]byte // a v5 CONNACK carries properties; byte 3 is the code in both
	if n, err := syscall.Read(fd, ack[:]); err != nil || n < 4 || n != 2+int(ack[1]) || ack[3] != 0 {
		b.Fatalf("CONNACK % x, %v", ack[:n], err)
	}
	return fd
}
