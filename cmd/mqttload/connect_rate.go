package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// connectRate measures CONNECT→CONNACK throughput: workers each loop over
// dial, CONNECT, wait for CONNACK, DISCONNECT, close. Against presenced
// (-metrics) it then waits until the consumer has stored the three
// lifecycle events of every cycle and reports that time too, so the figure
// counts events recorded, not only CONNACKs sent.
func connectRate(ctx context.Context, fs *flag.FlagSet, args []string, out io.Writer) error {
	mqttAddr := fs.String("mqtt", "127.0.0.1:1883", "broker address (loopback only)")
	workers := fs.Int("workers", 32, "concurrent connecting clients (at most 2000)")
	duration := fs.Duration("duration", 10*time.Second, "how long to connect (at most 5m)")
	maxCycles := fs.Int("max", 2_000_000, "stop after this many cycles")
	metricsURL := fs.String("metrics", "", "presenced /metrics URL (loopback only): wait for the events to be stored")
	drainTimeout := fs.Duration("drain-timeout", time.Minute, "give up waiting for events to be stored after this long (at most 10m)")
	label := fs.String("label", "", "name of the broker in the result line")
	tlsCA := fs.String("tls-ca", "", "PEM file of the broker's CA: connect over TLS (see loadTLS)")
	protocol := fs.Int("protocol", int(level311), "MQTT protocol level of the clients: 4 (3.1.1) or 5 (5.0)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	level, err := parseLevel(*protocol)
	if err != nil {
		return err
	}
	tlsConf, err := loadTLS(*tlsCA, *mqttAddr)
	if err != nil {
		return err
	}
	if err := checkLoopback(*mqttAddr); err != nil {
		return err
	}
	if *metricsURL != "" {
		host := strings.TrimPrefix(strings.TrimPrefix(*metricsURL, "http://"), "https://")
		host, _, _ = strings.Cut(host, "/")
		if err := checkLoopback(host); err != nil {
			return err
		}
	}
	*workers = min(max(*workers, 1), 2000)
	*duration = min(max(*duration, 100*time.Millisecond), 5*time.Minute)
	*drainTimeout = min(max(*drainTimeout, time.Second), 10*time.Minute)
	*maxCycles = max(*maxCycles, 1)

	var storedBefore int64
	if *metricsURL != "" {
		var err error
		if storedBefore, err = eventsSettled(ctx, *metricsURL); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	prefix := fmt.Sprintf("rate-%d-", time.Now().UnixNano())
	var cycles, failures atomic.Int64
	latencies := make([][]time.Duration, *workers)
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for w := range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			scratch := make([]byte, 0, 128)
			id := []byte(prefix + strconv.Itoa(w) + "-")
			idLen := len(id)
			for i := 0; ctx.Err() == nil; i++ {
				if cycles.Add(1) > int64(*maxCycles) {
					cycles.Add(-1)
					return
				}
				id = strconv.AppendInt(id[:idLen], int64(i), 10)
				conn, took, err := mqttDialTLS(*mqttAddr, dialSource(*mqttAddr, w+i**workers), tlsConf, level, string(id), 60, 5*time.Second, scratch)
				if err != nil {
					cycles.Add(-1)
					failures.Add(1)
					errOnce.Do(func() { firstErr = err })
					if sleepCtx(ctx, 10*time.Millisecond) != nil {
						return
					}
					continue
				}
				if len(latencies[w]) < 1_000_000 / *workers {
					latencies[w] = append(latencies[w], took)
				}
				conn.Write(disconnectPacket)
				conn.Close()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	n := cycles.Load()
	if n == 0 {
		return fmt.Errorf("no connection completed: %v", firstErr)
	}
	all := slices.Concat(latencies...)
	slices.Sort(all)
	fmt.Fprintf(out, "connect-rate %s: %d CONNECT->CONNACK cycles in %v with %d workers: %.0f connects/s; latency p50 %v p99 %v; %d failed\n",
		*label, n, elapsed.Round(time.Millisecond), *workers, float64(n)/elapsed.Seconds(),
		percentile(all, 50).Round(time.Microsecond), percentile(all, 99).Round(time.Microsecond), failures.Load())
	if firstErr != nil {
		fmt.Fprintf(out, "  first failure: %v\n", firstErr)
	}
	if *metricsURL == "" {
		return nil
	}
	// Every cycle yields connect, disconnect and tcpclean.
	want := storedBefore + 3*n
	deadline := time.Now().Add(*drainTimeout)
	for {
		stored, err := eventsStored(*metricsURL)
		if err != nil {
			return err
		}
		if stored >= want {
			total := time.Since(start)
			fmt.Fprintf(out, "  all %d lifecycle events stored %v after the last CONNACK: %.0f connects/s with every event in Postgres\n",
				stored-storedBefore, (total - elapsed).Round(time.Millisecond), float64(n)/total.Seconds())
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d lifecycle events stored %v after the run", stored-storedBefore, 3*n, *drainTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventsSettled waits (at most 30s) until the stored event count stops
// moving, so events of an earlier run do not count for this one.
func eventsSettled(ctx context.Context, metricsURL string) (int64, error) {
	last, err := eventsStored(metricsURL)
	for deadline := time.Now().Add(30 * time.Second); err == nil && time.Now().Before(deadline); {
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return 0, err
		}
		var now int64
		if now, err = eventsStored(metricsURL); err == nil && now == last {
			return now, nil
		}
		last = now
	}
	return last, err
}

// eventsStored reads presenced_events_applied_total plus
// presenced_events_duplicate_total from a presenced /metrics page.
func eventsStored(metricsURL string) (int64, error) {
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(metricsURL)
	if err != nil {
		return 0, fmt.Errorf("get %s: %w", metricsURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("get %s: %s", metricsURL, resp.Status)
	}
	var total float64
	found := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || (name != "presenced_events_applied_total" && name != "presenced_events_duplicate_total") {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s in %s: %w", name, metricsURL, err)
		}
		total += v
		found++
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read %s: %w", metricsURL, err)
	}
	if found == 0 {
		return 0, fmt.Errorf("no presenced_events_applied_total in %s", metricsURL)
	}
	return int64(total), nil
}
