package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// idleRSS measures what idle connections cost a broker in resident memory:
// it opens warm-up connections, reads the broker's VmRSS, opens n more
// (CONNECT/CONNACK, then silence), lets the broker settle, reads VmRSS
// again and reports (after - before) / n.
func idleRSS(ctx context.Context, fs *flag.FlagSet, args []string, out io.Writer) error {
	mqttAddr := fs.String("mqtt", "127.0.0.1:1883", "broker address (loopback only)")
	pid := fs.Int("pid", 0, "process id of the broker (required): its VmRSS is measured")
	n := fs.Int("n", 10000, "idle connections to open (at most 19000; mind ulimit -n)")
	warmup := fs.Int("warmup", 100, "connections opened before the baseline is taken")
	workers := fs.Int("workers", 16, "concurrent connectors (at most 256)")
	keepalive := fs.Int("keepalive", 60, "keepalive of the idle clients, seconds")
	settle := fs.Duration("settle", 5*time.Second, "wait after connecting before reading VmRSS (at most 2m)")
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
	if *pid <= 0 {
		return fmt.Errorf("-pid is required")
	}
	*n = min(max(*n, 1), 19000)
	*warmup = min(max(*warmup, 0), 1000)
	*workers = min(max(*workers, 1), 256)
	*keepalive = min(max(*keepalive, 0), 65535)
	*settle = min(max(*settle, 0), 2*time.Minute)
	prefix := fmt.Sprintf("idle-%d-", time.Now().UnixNano())

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	open := func(from, count int) error {
		opened, err := openIdle(ctx, *mqttAddr, tlsConf, level, prefix, from, count, *workers, uint16(*keepalive))
		conns = append(conns, opened...)
		return err
	}
	if err := open(0, *warmup); err != nil {
		return err
	}
	if err := sleepCtx(ctx, *settle); err != nil {
		return err
	}
	before, err := processRSS(*pid)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := open(*warmup, *n); err != nil {
		return err
	}
	took := time.Since(start)
	if err := sleepCtx(ctx, *settle); err != nil {
		return err
	}
	after, err := processRSS(*pid)
	if err != nil {
		return err
	}
	perConn := float64(after-before) / float64(*n)
	fmt.Fprintf(out, "idle-rss %s: %d idle connections (opened in %v) on %d warm-up: VmRSS %.1f MiB -> %.1f MiB: %.2f KiB per connection\n",
		*label, *n, took.Round(time.Millisecond), *warmup, mib(before), mib(after), perConn/1024)
	return nil
}

// openIdle opens count connections numbered from, count workers at a time,
// and returns those it opened (all of them unless err is set).
func openIdle(ctx context.Context, addr string, tlsConf *tls.Config, level byte, prefix string, from, count, workers int, keepalive uint16) ([]net.Conn, error) {
	conns := make([]net.Conn, count)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			scratch := make([]byte, 0, 128)
			for i := w; i < count && ctx.Err() == nil; i += workers {
				conn, _, err := mqttDialTLS(addr, dialSource(addr, from+i), tlsConf, level, fmt.Sprintf("%s%d", prefix, from+i), keepalive, 10*time.Second, scratch)
				if err != nil {
					errs[w] = err
					return
				}
				conns[i] = conn
			}
		}()
	}
	wg.Wait()
	opened := conns[:0]
	for _, c := range conns {
		if c != nil {
			opened = append(opened, c)
		}
	}
	for _, err := range errs {
		if err != nil {
			return opened, fmt.Errorf("open idle connections (%d of %d open): %w", len(opened), count, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return opened, err
	}
	return opened, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
