package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// offlineLatency measures the time from an abrupt client close (TCP RST, as
// a crashed device) to the API answering online:false: for each try it
// connects a fresh client, waits until the API says online, resets the
// socket, and polls GET /clients/{id}/online every millisecond.
func offlineLatency(ctx context.Context, fs *flag.FlagSet, args []string, out io.Writer) error {
	mqttAddr := fs.String("mqtt", "127.0.0.1:1883", "broker address (loopback only)")
	httpAddr := fs.String("http", "127.0.0.1:8080", "presenced API address (loopback only)")
	tries := fs.Int("n", 100, "number of tries (at most 10000)")
	timeout := fs.Duration("timeout", 10*time.Second, "give up on one try after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkLoopback(*mqttAddr, *httpAddr); err != nil {
		return err
	}
	*tries = min(max(*tries, 1), 10000)
	client := &http.Client{Timeout: 5 * time.Second}
	prefix := fmt.Sprintf("latency-%d-", time.Now().UnixNano())
	var latencies []time.Duration
	for i := range *tries {
		if ctx.Err() != nil {
			break
		}
		clientID := fmt.Sprintf("%s%d", prefix, i)
		conn, err := dialConnect(*mqttAddr, clientID)
		if err != nil {
			return err
		}
		if _, err := waitOnline(client, *httpAddr, clientID, true, *timeout); err != nil {
			conn.Close()
			return err
		}
		conn.(*net.TCPConn).SetLinger(0)
		conn.Close()
		d, err := waitOnline(client, *httpAddr, clientID, false, *timeout)
		if err != nil {
			return err
		}
		latencies = append(latencies, d)
	}
	slices.Sort(latencies)
	fmt.Fprintf(out, "abrupt close -> online:false over REST, %d tries: p50 %v  p90 %v  p99 %v  max %v\n",
		len(latencies), percentile(latencies, 50), percentile(latencies, 90), percentile(latencies, 99), latencies[len(latencies)-1])
	return nil
}

// dialConnect opens a raw MQTT 3.1.1 connection and completes CONNECT/CONNACK.
func dialConnect(addr, clientID string) (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	var body []byte
	body = binary.BigEndian.AppendUint16(body, 4)
	body = append(body, "MQTT"...)
	body = append(body, 4, 0x02, 0, 60)
	body = binary.BigEndian.AppendUint16(body, uint16(len(clientID)))
	body = append(body, clientID...)
	pkt := append([]byte{0x10, byte(len(body))}, body...)
	if _, err := conn.Write(pkt); err != nil {
		conn.Close()
		return nil, fmt.Errorf("send CONNECT: %w", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var connack [4]byte
	if _, err := io.ReadFull(conn, connack[:]); err != nil || connack[3] != 0 {
		conn.Close()
		return nil, fmt.Errorf("CONNACK for %s: % x %v", clientID, connack, err)
	}
	return conn, nil
}

// waitOnline polls the API until the client's online flag equals want.
func waitOnline(client *http.Client, httpAddr, clientID string, want bool, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	u := "http://" + httpAddr + "/clients/" + url.PathEscape(clientID) + "/online"
	for time.Since(start) < timeout {
		resp, err := client.Get(u)
		if err != nil {
			return 0, fmt.Errorf("GET %s: %w", u, err)
		}
		var status struct {
			Online bool `json:"online"`
		}
		err = json.NewDecoder(resp.Body).Decode(&status)
		resp.Body.Close()
		if err != nil {
			return 0, fmt.Errorf("decode %s: %w", u, err)
		}
		if status.Online == want {
			return time.Since(start), nil
		}
		time.Sleep(time.Millisecond)
	}
	return 0, fmt.Errorf("client %s not online=%v after %v", clientID, want, timeout)
}
