package test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// openChannelCount counts the channels the store holds open, optionally
// only those with a given close reason pending — independent evidence read
// straight from Postgres.
func openChannelCount(t *testing.T, dbURL, clientPrefix string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM channels WHERE has_connect AND NOT has_tcpclean AND starts_with(client_id, $1)`, clientPrefix).Scan(&n); err != nil {
		t.Fatalf("count open channels: %v", err)
	}
	return n
}

// reasonCounts returns how many tcpclean events of the clients carry each reason.
func reasonCounts(t *testing.T, dbURL, clientPrefix string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, `SELECT reason, count(*) FROM events WHERE event_type = 'tcpclean' AND starts_with(client_id, $1) GROUP BY reason`, clientPrefix)
	out := map[string]int{}
	var reason string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&reason, &n}, func() error { out[reason] = n; return nil })
	if err != nil {
		t.Fatalf("count reasons: %v", err)
	}
	return out
}

// connectMany opens n raw MQTT connections with client ids prefix0..prefixN-1.
func connectMany(t *testing.T, addr, prefix string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, n)
	for i := range n {
		conn, code := rawConnect(t, addr, fmt.Sprintf("%s%d", prefix, i), 300)
		if code != 0 {
			t.Fatalf("client %d: CONNACK code %d", i, code)
		}
		conns[i] = conn
	}
	return conns
}

// waitOpenChannels polls the store until the clients have want open channels.
func waitOpenChannels(t *testing.T, dbURL, prefix string, want int, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		n := openChannelCount(t, dbURL, prefix)
		if n == want {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%d open channels of %s* after %v, want %d", n, prefix, timeout, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestKilledBrokerRestartedFencesOldEpoch(t *testing.T) {
	const clients = 1000
	p := startServe(t, pgtest.URL(t))
	connectMany(t, p.MQTTAddr, "fleet-", clients)
	waitOpenChannels(t, p.DBURL, "fleet-", clients, 30*time.Second)

	killed := time.Now()
	p.kill()
	p.start() // same node, new epoch
	// Every channel of the old epoch is closed as node_lost once the new
	// epoch announces itself, before the new process is even ready.
	took := waitOpenChannels(t, p.DBURL, "fleet-", 0, 30*time.Second)
	t.Logf("SIGKILL -> restart -> all %d old channels closed: %v after kill (%v after ready)", clients, time.Since(killed), took)
	if got := reasonCounts(t, p.DBURL, "fleet-"); got["node_lost"] != clients {
		t.Fatalf("tcpclean reasons %v, want %d node_lost", got, clients)
	}
	for i := 0; i < clients; i += 97 { // the view follows the store asynchronously
		p.waitOnline(fmt.Sprintf("fleet-%d", i), false, 10*time.Second)
	}
	// Clients that reconnect are online again.
	for i := range 10 {
		rawConnect(t, p.MQTTAddr, fmt.Sprintf("fleet-%d", i), 300)
		p.waitOnline(fmt.Sprintf("fleet-%d", i), true, 5*time.Second)
	}
}

func TestLostTCPCleanIsRepairedByReconciliation(t *testing.T) {
	p := &proc{t: t, MQTTAddr: freeAddr(t), HTTPAddr: freeAddr(t), DBURL: pgtest.URL(t), Node: "node-reconcile", DataDir: t.TempDir(),
		Env: []string{"PRESENCE_TEST_DROP_TCPCLEAN=lossy-"}}
	p.start("--reconcile-every", "1s")
	lossy, _ := rawConnect(t, p.MQTTAddr, "lossy-1", 300)
	kept, _ := rawConnect(t, p.MQTTAddr, "steady-1", 300)
	defer kept.Close()
	p.waitOnline("lossy-1", true, 5*time.Second)
	abortClose(lossy) // its tcpclean is lost by the test hook
	time.Sleep(200 * time.Millisecond)
	if !p.status("lossy-1").Online {
		t.Fatal("the test hook did not lose the tcpclean; the test proves nothing")
	}
	took := p.waitOnline("lossy-1", false, 5*time.Second) // within one period (1s) plus apply
	t.Logf("lost tcpclean repaired %v after the check began", took)
	events := storedEvents(t, p.DBURL, "lossy-1")
	if last := events[len(events)-1]; last.EventType != "tcpclean" || last.Reason != "reconciled" {
		t.Fatalf("stored %+v, want a synthesized tcpclean(reconciled)", events)
	}
	if !p.status("steady-1").Online {
		t.Fatal("reconciliation closed a channel the broker still holds")
	}
}

func TestBrokerClockSkewChangesNothing(t *testing.T) {
	p := &proc{t: t, MQTTAddr: freeAddr(t), HTTPAddr: freeAddr(t), DBURL: pgtest.URL(t), Node: "node-skew", DataDir: t.TempDir(),
		Env: []string{"PRESENCE_TEST_CLOCK_SKEW=10m"}}
	p.start()
	rawConnect(t, p.MQTTAddr, "skew-1", 300)
	p.waitOnline("skew-1", true, 5*time.Second)
	p.kill()
	// The next process of the node has a clock 20 minutes behind the last one.
	p.Env = []string{"PRESENCE_TEST_CLOCK_SKEW=-10m"}
	p.start()
	p.waitOnline("skew-1", false, 10*time.Second) // fenced although its events look "newer"
	rawConnect(t, p.MQTTAddr, "skew-1", 300)
	p.waitOnline("skew-1", true, 5*time.Second)
	// Takeover with the skewed clock: still online.
	rawConnect(t, p.MQTTAddr, "skew-1", 300)
	time.Sleep(100 * time.Millisecond)
	if st := p.status("skew-1"); !st.Online || st.OpenChannels != 1 {
		t.Fatalf("after takeover under clock skew: %+v", st)
	}
}

func TestKilledBrokerNotRestartedTurnsUnknownThenOffline(t *testing.T) {
	const clients = 1000
	dbURL := pgtest.URL(t)
	p := &proc{t: t, MQTTAddr: freeAddr(t), HTTPAddr: freeAddr(t), DBURL: dbURL, Node: "node-doomed", DataDir: t.TempDir(),
		Args: []string{"--node-lease", "2s", "--heartbeat-every", "500ms", "--node-grace", "3s"}}
	p.start()
	// A separate API process watches the same store; it outlives the broker.
	watcher := &proc{t: t, Command: "api", HTTPAddr: freeAddr(t), DBURL: dbURL, DataDir: t.TempDir(), Args: []string{"--node-grace", "3s"}}
	watcher.start()
	connectMany(t, p.MQTTAddr, "doomed-", clients)
	waitOpenChannels(t, dbURL, "doomed-", clients, 30*time.Second)
	if st := watcher.status("doomed-7"); !st.Online {
		t.Fatalf("before the kill: %+v", st)
	}

	killed := time.Now()
	p.kill()
	// Unknown once the lease (2 s) has run out: not online, not offline.
	for {
		st := watcher.status("doomed-7")
		if st.State == "unknown" {
			if st.Online || st.Node != "node-doomed" || st.Since == nil {
				t.Fatalf("unknown answer %+v, want online=false, the node and since when it is silent", st)
			}
			t.Logf("SIGKILL -> unknown after %v", time.Since(killed))
			break
		}
		if !st.Online || time.Since(killed) > 20*time.Second {
			t.Fatalf("after the kill %v: %+v, want online until the lease runs out, then unknown", time.Since(killed), st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Offline once the grace (3 s more) has run out: every channel closed as node_lost.
	took := waitOpenChannels(t, dbURL, "doomed-", 0, 30*time.Second)
	watcher.waitState("doomed-999", "offline", 10*time.Second)
	t.Logf("SIGKILL -> all %d channels closed as node_lost after %v", clients, time.Since(killed))
	_ = took
	if got := reasonCounts(t, dbURL, "doomed-"); got["node_lost"] != clients {
		t.Fatalf("tcpclean reasons %v, want %d node_lost", got, clients)
	}
	for i := 0; i < clients; i += 111 {
		// The view follows the store asynchronously; unknown is not offline.
		watcher.waitState(fmt.Sprintf("doomed-%d", i), "offline", 10*time.Second)
	}
}
