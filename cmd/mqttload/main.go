// Command mqttload measures presenced and MQTT brokers on loopback. Every
// run is bounded in count and time.
//
//	mqttload offline-latency -mqtt 127.0.0.1:1883 -http 127.0.0.1:8080 -n 100
//	mqttload seed -database-url postgres://127.0.0.1:5432/presenced -clients 100000 -channels 1000000
//	mqttload http-online -http 127.0.0.1:8080 -clients 100000 -d 10s -pgbench-url postgres://127.0.0.1:5432/pgbench
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mqttload:", err)
		os.Exit(1)
	}
}

// scenarios maps a subcommand to its implementation.
var scenarios = map[string]func(ctx context.Context, fs *flag.FlagSet, args []string, out io.Writer) error{
	"offline-latency": offlineLatency,
	"churn":           churn,
	"seed":            seed,
	"http-online":     httpOnline,
	"idle-rss":        idleRSS,
	"connect-rate":    connectRate,
	"pubsub":          pubsub,
	"storm":           storm,
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: mqttload <%s> [flags]", strings.Join(scenarioNames(), "|"))
	}
	scenario, ok := scenarios[args[0]]
	if !ok {
		return fmt.Errorf("unknown scenario %q; known: %s", args[0], strings.Join(scenarioNames(), ", "))
	}
	fs := flag.NewFlagSet("mqttload "+args[0], flag.ContinueOnError)
	return scenario(ctx, fs, args[1:], out)
}

func scenarioNames() []string {
	names := make([]string, 0, len(scenarios))
	for name := range scenarios {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// percentile returns the p-th percentile (0..100) of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

// checkLoopback refuses any target that is not on this machine's loopback.
func checkLoopback(addrs ...string) error {
	for _, a := range addrs {
		host := a
		if i := strings.LastIndex(a, ":"); i >= 0 {
			host = a[:i]
		}
		host = strings.Trim(host, "[]")
		if host != "127.0.0.1" && host != "localhost" && host != "::1" && !strings.HasPrefix(host, "127.") {
			return fmt.Errorf("refusing to load %s: mqttload targets loopback addresses only", a)
		}
	}
	return nil
}
