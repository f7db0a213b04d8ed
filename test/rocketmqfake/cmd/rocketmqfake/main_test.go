package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"
)

// The test binary doubles as the command: with ROCKETMQFAKE_RUN_MAIN=1 it
// runs main, so the test needs no separate go build.
func TestMain(m *testing.M) {
	if os.Getenv("ROCKETMQFAKE_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	rlog.SetLogLevel("error")
	os.Exit(m.Run())
}

func TestCommand(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-namesrv-addr", "127.0.0.1:0", "-broker-addr", "127.0.0.1:0", "-queues", "2")
	cmd.Env = append(os.Environ(), "ROCKETMQFAKE_RUN_MAIN=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	lines := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	var ready string
	select {
	case ready = <-lines:
	case <-time.After(10 * time.Second):
		t.Fatal("no READY line")
	}
	var ns string
	for _, field := range strings.Fields(ready) {
		if v, ok := strings.CutPrefix(field, "namesrv="); ok {
			ns = v
		}
	}
	if !strings.HasPrefix(ready, "READY ") || ns == "" {
		t.Fatalf("ready line %q", ready)
	}

	p, err := producer.NewDefaultProducer(producer.WithNameServer(primitive.NamesrvAddr{ns}),
		producer.WithInstanceName("cmd-test"), producer.WithRetry(2))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := p.SendSync(ctx, primitive.NewMessage("cmd-topic", []byte("hi")))
	if err != nil || res.MessageQueue.QueueId > 1 {
		t.Fatalf("send: %v %v", res, err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not exit on SIGTERM")
	}
}
