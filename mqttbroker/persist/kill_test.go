package persist

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

const killChildEnv = "PERSIST_KILL_CHILD_DIR"

// TestKillChild is the child of TestSIGKILLWhileAppending: it appends from
// several goroutines until it is killed, printing each record whose Append
// returned. Run alone it does nothing.
func TestKillChild(t *testing.T) {
	dir := os.Getenv(killChildEnv)
	if dir == "" {
		t.Skip("only run as the child of TestSIGKILLWhileAppending")
	}
	// Small compaction threshold: the kill lands in compactions too.
	s, _, err := Open(dir, Options{CompactBytes: 32 << 10, Log: quietLog()})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	var out sync.Mutex
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				topic := fmt.Sprintf("w%d/%d", w, i)
				err := s.Append(
					SetRetained(Message{Topic: topic, Payload: []byte(strings.Repeat("p", 100)), QoS: 1}),
					PutSession(SessionInfo{ClientID: topic}),
					Enqueue(topic, Message{Topic: topic, Payload: []byte("queued"), QoS: 1}),
				)
				if err != nil {
					fmt.Println("append:", err)
					os.Exit(2)
				}
				out.Lock()
				fmt.Println("ok", topic)
				out.Unlock()
				// Keep the state bounded: drop what is 50 appends old.
				if i >= 50 {
					old := fmt.Sprintf("w%d/%d", w, i-50)
					if _, err := s.Stage(DeleteRetained(old), DeleteSession(old)); err != nil {
						fmt.Println("stage:", err)
						os.Exit(2)
					}
				}
			}
		})
	}
	wg.Wait()
}

// SIGKILL while appending: every Append that returned before the kill is
// in the state reopened after it.
func TestSIGKILLWhileAppending(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	for round := range 3 {
		dir := t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), killChildEnv+"="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		acked := make(chan string, 1<<16)
		scanDone := make(chan struct{})
		var others []string
		go func() {
			defer close(scanDone)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if topic, ok := strings.CutPrefix(sc.Text(), "ok "); ok {
					acked <- topic
				} else {
					others = append(others, sc.Text())
				}
			}
		}()
		// Kill after a number of acknowledged appends that varies by round,
		// well past the first compactions.
		want := 2000 + 1500*round
		deadline := time.After(60 * time.Second)
		var got []string
		for len(got) < want {
			select {
			case topic := <-acked:
				got = append(got, topic)
			case <-scanDone:
				t.Fatalf("child ended early: %v", others)
			case <-deadline:
				cmd.Process.Kill()
				t.Fatalf("only %d appends acknowledged in 60s", len(got))
			}
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		<-scanDone
		close(acked)
		for topic := range acked {
			got = append(got, topic)
		}
		s, st := openStore(t, dir, Options{})
		// Each worker keeps its last 50; an acknowledged append must be
		// there unless the same worker's later delete was staged.
		last := map[string]int{}
		for _, topic := range got {
			var w, i int
			fmt.Sscanf(topic, "w%d/%d", &w, &i)
			last[fmt.Sprint(w)] = max(last[fmt.Sprint(w)], i)
		}
		missing := 0
		for _, topic := range got {
			var w, i int
			fmt.Sscanf(topic, "w%d/%d", &w, &i)
			if i <= last[fmt.Sprint(w)]-50 {
				continue // possibly deleted since
			}
			ss := st.Sessions[topic]
			if _, ok := st.Retained[topic]; !ok || ss == nil || len(ss.Queue) != 1 {
				missing++
				if missing < 5 {
					t.Errorf("round %d: acknowledged %s is missing after SIGKILL", round, topic)
				}
			}
		}
		if missing > 0 {
			t.Fatalf("round %d: %d acknowledged appends lost of %d", round, missing, len(got))
		}
		stats := s.Stats()
		t.Logf("round %d: %d appends acknowledged; reopened: %d records replayed, %d torn cuts, snapshot %d B, journal %d B",
			round, len(got), stats.RecordsReplayed, stats.TornTruncated, stats.SnapshotBytes, stats.JournalBytes)
		if stats.SnapshotBytes == 0 {
			t.Errorf("round %d: no compaction ran before the kill", round)
		}
		s.Close()
	}
}
