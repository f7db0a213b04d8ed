package mqttbroker

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkWakeUp measures how fast a broker answers the first packet of
// a connection in each state a connection can wait in: the round trip of
// one request seen by a raw-socket client, p50 and p99 as metrics. The
// broker runs in a child process, so that its wake-up is its own and not
// the client's runtime already awake in the same process.
//
//   - connack: CONNECT on a fresh connection (dial not included), whose
//     goroutine waits in the runtime's network poller;
//   - active: PINGREQ right after the previous PINGRESP;
//   - idle: PINGREQ after the connection has been quiet for 20 ms, long
//     enough to be parked and for the broker's process to fall asleep;
//   - idle_unparked: the same with the idle poller switched off, so the
//     connection keeps a goroutine waiting in the runtime's poller — the
//     reference for what parking costs;
//   - mosquitto_active, mosquitto_idle: the same client against mosquitto
//     (skipped when it is not installed), for what any broker pays here.
//
// The figures are in BENCHMARKS.md ("Waking an idle connection").
func BenchmarkWakeUp(b *testing.B) {
	b.Run("connack", func(b *testing.B) {
		addr := wakeUpBroker(b, "parked")
		connect := encodePacket(&connectPacket{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "w", CleanSession: true})
		rtts := make([]time.Duration, 0, b.N)
		for range b.N {
			nc := mustDial(b, addr)
			start := time.Now()
			rtts = append(rtts, roundTrip(b, nc, connect).Sub(start))
			nc.Close()
		}
		reportLatency(b, rtts)
	})
	for _, v := range []struct {
		name   string
		broker string
		quiet  time.Duration
	}{
		{"active", "parked", 0},
		{"idle", "parked", 20 * time.Millisecond},
		{"idle_unparked", "unparked", 20 * time.Millisecond},
		{"mosquitto_active", "mosquitto", 0},
		{"mosquitto_idle", "mosquitto", 20 * time.Millisecond},
	} {
		b.Run(v.name, func(b *testing.B) {
			nc := mustDial(b, wakeUpBroker(b, v.broker))
			roundTrip(b, nc, encodePacket(&connectPacket{ProtocolName: "MQTT", ProtocolLevel: 4, ClientID: "w", CleanSession: true}))
			ping := encodePacket(&emptyPacket{Type: typePingreq})
			rtts := make([]time.Duration, 0, b.N)
			for range b.N {
				if v.quiet > 0 {
					time.Sleep(v.quiet) // the state under test is "nothing happened for a while"
				}
				start := time.Now()
				rtts = append(rtts, roundTrip(b, nc, ping).Sub(start))
			}
			reportLatency(b, rtts)
		})
	}
}

// roundTrip writes request and reads one packet back, returning when the
// answer was in.
func roundTrip(b *testing.B, nc net.Conn, request []byte) time.Time {
	if _, err := nc.Write(request); err != nil {
		b.Fatal(err)
	}
	var reader packetReader
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := reader.readPacket(nc, 1<<10); err != nil {
		b.Fatal(err)
	}
	done := time.Now()
	reader.release()
	return done
}

func reportLatency(b *testing.B, rtts []time.Duration) {
	b.StopTimer()
	slices.Sort(rtts)
	at := func(q float64) float64 { return float64(rtts[int(q*float64(len(rtts)-1))]) / 1e3 }
	b.ReportMetric(at(0.5), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
	b.ReportMetric(0, "ns/op") // the quiet periods make ns/op meaningless
}

// wakeUpEnv names the broker a child process of the test binary serves
// for BenchmarkWakeUp (see TestMain).
const wakeUpEnv = "MQTTBROKER_WAKEUP_BROKER"

// wakeUpBroker starts a broker in a child process for the rest of the
// benchmark and returns its address: this package's broker with its idle
// poller ("parked") or without ("unparked"), or mosquitto.
func wakeUpBroker(b *testing.B, kind string) string {
	var cmd *exec.Cmd
	var addr string
	if kind == "mosquitto" {
		path, err := exec.LookPath("mosquitto")
		if err != nil {
			b.Skip("mosquitto is not installed")
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		addr = ln.Addr().String()
		ln.Close()
		_, port, _ := net.SplitHostPort(addr)
		conf := b.TempDir() + "/mosquitto.conf"
		os.WriteFile(conf, []byte("listener "+port+" 127.0.0.1\nallow_anonymous true\nlog_dest none\n"), 0o644)
		cmd = exec.Command(path, "-c", conf)
	} else {
		cmd = exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), wakeUpEnv+"="+kind)
	}
	stdin, _ := cmd.StdinPipe() // the child serves until this closes
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	if addr == "" {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil {
			b.Fatalf("broker child: %v", err)
		}
		addr = strings.TrimSpace(line)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		nc, err := net.Dial("tcp", addr)
		if err == nil {
			nc.Close()
			return addr
		}
		if time.Now().After(deadline) {
			b.Fatalf("broker at %s: %v", addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// serveWakeUpBroker is the child process of wakeUpBroker: it prints the
// address it serves and serves until its stdin closes.
func serveWakeUpBroker(kind string) {
	srv := New(Config{AllowAnonymous: true, Logger: discardLogger(), Node: "bench", Epoch: "e"}, nil)
	if kind == "unparked" && srv.idle != nil {
		idle := srv.idle
		srv.idle = nil // before Serve: no connection has seen it
		idle.close()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go srv.Serve(ln)
	fmt.Println(ln.Addr())
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

func TestMain(m *testing.M) {
	if kind := os.Getenv(wakeUpEnv); kind != "" {
		serveWakeUpBroker(kind)
	}
	os.Exit(m.Run())
}
