package main

import (
	"context"
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
		conn, _, err := mqttDial(*mqttAddr, nil, clientID, 60, 5*time.Second, nil)
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
