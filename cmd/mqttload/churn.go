package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// churn opens and closes MQTT connections as fast as it can from many
// workers, each cycle producing the three lifecycle events of one channel
// (connect, disconnect, tcpclean): the load that drives the event pipeline.
func churn(ctx context.Context, fs *flag.FlagSet, args []string, out io.Writer) error {
	mqttAddr := fs.String("mqtt", "127.0.0.1:1883", "broker address (loopback only)")
	workers := fs.Int("workers", 64, "concurrent connections (at most 5000)")
	duration := fs.Duration("duration", 20*time.Second, "how long to run (at most 10m)")
	prefix := fs.String("prefix", fmt.Sprintf("churn-%d-", time.Now().Unix()), "client id prefix")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkLoopback(*mqttAddr); err != nil {
		return err
	}
	*workers = min(max(*workers, 1), 5000)
	*duration = min(max(*duration, time.Second), 10*time.Minute)
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()

	var cycles, failures atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			scratch := make([]byte, 0, 128)
			for i := 0; ctx.Err() == nil; i++ {
				conn, _, err := mqttDial(*mqttAddr, nil, fmt.Sprintf("%s%d-%d", *prefix, w, i), 60, 5*time.Second, scratch)
				if err != nil {
					failures.Add(1)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				conn.Write(disconnectPacket)
				conn.Close()
				cycles.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	n := cycles.Load()
	fmt.Fprintf(out, "churn: %d connect/disconnect cycles (%d events) in %v: %.0f cycles/s, %.0f events/s emitted; %d failed connects\n",
		n, 3*n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), float64(3*n)/elapsed.Seconds(), failures.Load())
	return nil
}
