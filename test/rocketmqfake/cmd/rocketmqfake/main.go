// Command rocketmqfake runs the RocketMQ test double as its own process,
// for end-to-end tests that start separate processes:
//
//	go build -o /tmp/rocketmqfake ./test/rocketmqfake/cmd/rocketmqfake
//	/tmp/rocketmqfake -namesrv-addr 127.0.0.1:19876 -broker-addr 127.0.0.1:10911
//
// Once both listeners are up it prints one line to stdout,
//
//	READY namesrv=127.0.0.1:19876 broker=127.0.0.1:10911
//
// (useful with port 0), and it stops on SIGINT/SIGTERM. Logs go to stderr.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/presenced/presenced/test/rocketmqfake"
)

func main() {
	var (
		nsAddr      = flag.String("namesrv-addr", "127.0.0.1:9876", "name server listen address (ip:port, port 0 = any)")
		brAddr      = flag.String("broker-addr", "127.0.0.1:10911", "broker listen address (ip:port, port 0 = any)")
		queues      = flag.Int("queues", 4, "queues per auto-created topic")
		noAuto      = flag.Bool("no-auto-create", false, "refuse unknown topics (TOPIC_NOT_EXIST)")
		maxPoll     = flag.Duration("max-long-poll", 0, "cap on how long an empty pull is held (0 = client's 20s)")
		newAtMax    = flag.Bool("new-groups-at-max-offset", false, "answer QUERY_NOT_FOUND for uncommitted queues")
		realDelays  = flag.Bool("real-delay-levels", false, "use the broker's delay levels (1s 5s 10s ...) instead of immediate retries")
		verbose     = flag.Bool("v", false, "log every request")
		brokerName  = flag.String("broker-name", "broker-a", "broker name")
		clusterName = flag.String("cluster-name", "DefaultCluster", "cluster name")
	)
	flag.Parse()
	if os.Getenv("GOGC") == "" {
		// The double stores every message it is sent in memory and
		// re-encodes it for pulls; a lazier collector keeps its CPU
		// share down when it runs beside what it is testing.
		debug.SetGCPercent(400)
	}

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	opts := rocketmqfake.Options{
		NamesrvAddr: *nsAddr, BrokerAddr: *brAddr, Queues: *queues, NoAutoCreateTopics: *noAuto,
		MaxLongPoll: *maxPoll, NewGroupsStartAtMaxOffset: *newAtMax,
		BrokerName: *brokerName, ClusterName: *clusterName,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	}
	if *realDelays {
		opts.DelayLevels = rocketmqfake.RealDelayLevels
	}
	// Listen for signals before READY: whoever reads READY may signal at
	// once, and an unhandled SIGTERM would kill the process uncleanly.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	f := rocketmqfake.New(opts)
	if err := f.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "rocketmqfake:", err)
		os.Exit(1)
	}
	fmt.Printf("READY namesrv=%s broker=%s\n", f.NamesrvAddr(), f.BrokerAddr())
	<-sig
	done := make(chan struct{})
	go func() { f.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		fmt.Fprintln(os.Stderr, "rocketmqfake: stop timed out")
		os.Exit(1)
	}
}
