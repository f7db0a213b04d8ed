package test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	rocketmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"
	"github.com/jackc/pgx/v5"

	"github.com/presenced/presenced/presence/pgstore/pgtest"
	"github.com/presenced/presenced/test/rocketmqfake"
)

// rmqPath is presenced scaled out: "presenced broker" → RocketMQ →
// "presenced consumer" → Postgres ← "presenced api", each its own process.
// RocketMQ is the wire-compatible test double, or a real name server when
// PRESENCE_TEST_ROCKETMQ_NAMESRV is set.
type rmqPath struct {
	t        *testing.T
	fake     *rocketmqfake.Fake // nil against a real RocketMQ
	namesrv  string
	topic    string
	group    string
	dbURL    string
	broker   *proc
	consumer *proc
	api      *proc
}

var nonTopicChars = regexp.MustCompile(`[^A-Za-z0-9_]`)

// startRMQPath starts the fake (unless a real RocketMQ is configured) and
// the three presenced processes, all in the environment env (KEY=value):
// each takes the variables of the flags it uses and ignores the others, as
// in a deployment that shares one environment.
func startRMQPath(t *testing.T, dbURL string, env ...string) *rmqPath {
	t.Helper()
	name := nonTopicChars.ReplaceAllString(t.Name(), "_")
	r := &rmqPath{t: t, dbURL: dbURL, topic: "presenced_" + name, group: "GID_" + name}
	if addr := os.Getenv("PRESENCE_TEST_ROCKETMQ_NAMESRV"); addr != "" {
		r.namesrv = addr
	} else {
		r.fake = rocketmqfake.New(rocketmqfake.Options{
			NamesrvAddr: "127.0.0.1:0", BrokerAddr: "127.0.0.1:0",
			Logger: slog.New(slog.DiscardHandler),
		})
		if err := r.fake.Start(); err != nil {
			t.Fatalf("start rocketmq fake: %v", err)
		}
		t.Cleanup(r.fake.Stop)
		r.namesrv = r.fake.NamesrvAddr()
	}
	// Each command takes only the flags it uses (the consumer group is the consumer's).
	rmqArgs := []string{"--rocketmq-namesrv", r.namesrv, "--rocketmq-topic", r.topic}
	r.broker = &proc{t: t, Command: "broker", MQTTAddr: freeAddr(t), HTTPAddr: freeAddr(t), Node: "broker-" + name, DataDir: t.TempDir(), Args: rmqArgs, Env: env}
	r.broker.start()
	r.consumer = &proc{t: t, Command: "consumer", HTTPAddr: freeAddr(t), DBURL: dbURL, DataDir: t.TempDir(),
		Args: append(slices.Clone(rmqArgs), "--rocketmq-consumer-group", r.group), Env: env}
	r.consumer.start()
	r.api = &proc{t: t, Command: "api", HTTPAddr: freeAddr(t), DBURL: dbURL, DataDir: t.TempDir(), Env: env}
	r.api.start()
	return r
}

// needFake skips a test that injects faults into the RocketMQ double.
func (r *rmqPath) needFake() {
	if r.fake == nil {
		r.t.Skip("fault injection needs the RocketMQ test double")
	}
}

// eventCounts counts the stored events of clients with the prefix, by type.
func eventCounts(t *testing.T, dbURL, prefix string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, `SELECT event_type, count(*) FROM events WHERE starts_with(client_id, $1) GROUP BY event_type`, prefix)
	out := map[string]int{}
	var typ string
	var n int
	if _, err := pgx.ForEachRow(rows, []any{&typ, &n}, func() error { out[typ] = n; return nil }); err != nil {
		t.Fatalf("count events: %v", err)
	}
	return out
}

// waitEventCounts polls until the stored counts equal want.
func waitEventCounts(t *testing.T, dbURL, prefix string, want map[string]int, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got := eventCounts(t, dbURL, prefix)
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("stored events of %s*: %v after %v, want %v", prefix, got, timeout, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// comeAndGo connects n clients; the even ones send DISCONNECT, the odd
// ones vanish with a TCP reset.
func comeAndGo(t *testing.T, addr, prefix string, n int) {
	t.Helper()
	conns := connectMany(t, addr, prefix, n)
	for i, conn := range conns {
		if i%2 == 0 {
			conn.Write(disconnectPacket)
			conn.Close()
		} else {
			abortClose(conn)
		}
	}
}

// expectedCounts is what comeAndGo of n clients stores.
func expectedCounts(n int) map[string]int {
	return map[string]int{"connect": n, "disconnect": (n + 1) / 2, "tcpclean": n}
}

func TestRocketMQPathStoresEveryEventOnce(t *testing.T) {
	r := startRMQPath(t, pgtest.URL(t))
	const clients = 1000
	start := time.Now()
	comeAndGo(t, r.broker.MQTTAddr, "rmq-", clients)
	waitEventCounts(t, r.dbURL, "rmq-", expectedCounts(clients), 60*time.Second)
	t.Logf("%d events of %d clients stored through RocketMQ in %v", clients*5/2, clients, time.Since(start))
	// The API's view follows the store's feed asynchronously: wait for it
	// (waitOnline fails the test if it never comes).
	for i := 0; i < clients; i += 50 {
		r.api.waitOnline(fmt.Sprintf("rmq-%d", i), false, 10*time.Second)
	}
	stay, _ := rawConnect(t, r.broker.MQTTAddr, "rmq-stays", 300)
	defer stay.Close()
	r.api.waitOnline("rmq-stays", true, 10*time.Second)
}

func TestRocketMQOutageAndBrokerKillLoseNothing(t *testing.T) {
	r := startRMQPath(t, pgtest.URL(t))
	r.needFake()
	comeAndGo(t, r.broker.MQTTAddr, "before-", 50)
	waitEventCounts(t, r.dbURL, "before-", expectedCounts(50), 30*time.Second)

	// RocketMQ unreachable for 30 s while clients come and go: the broker
	// keeps accepting (its outbox grows), and after RocketMQ returns
	// nothing is missing.
	r.fake.UnreachableFor(30 * time.Second)
	outage := time.Now()
	comeAndGo(t, r.broker.MQTTAddr, "during-", 200)
	if got := eventCounts(t, r.dbURL, "during-"); len(got) != 0 && time.Since(outage) < 25*time.Second {
		t.Logf("events stored during the outage (the fake paused late): %v", got)
	}
	waitEventCounts(t, r.dbURL, "during-", expectedCounts(200), 90*time.Second)
	t.Logf("events of the outage stored %v after it began", time.Since(outage))

	// The broker killed with SIGKILL while its outbox holds events RocketMQ
	// has not acknowledged, then restarted: the outbox resumes, and every
	// event it had accepted arrives.
	r.fake.Pause()
	comeAndGo(t, r.broker.MQTTAddr, "kill-", 300)
	r.broker.waitMetric("presenced_mqtt_connections", 0, 30*time.Second) // every close is in the outbox
	r.broker.kill()
	r.fake.Resume()
	r.broker.start()
	waitEventCounts(t, r.dbURL, "kill-", expectedCounts(300), 60*time.Second)
	comeAndGo(t, r.broker.MQTTAddr, "after-", 20)
	waitEventCounts(t, r.dbURL, "after-", expectedCounts(20), 30*time.Second)
}

func TestRocketMQConsumerKillAndPostgresRestartLoseNothing(t *testing.T) {
	cluster := startPrivateCluster(t)
	r := startRMQPath(t, cluster.URL())

	// SIGKILL the consumer while batches are being applied.
	comeAndGo(t, r.broker.MQTTAddr, "ck-", 1000)
	deadline := time.Now().Add(30 * time.Second)
	for eventCounts(t, r.dbURL, "ck-")["connect"] == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	r.consumer.kill()
	partial := eventCounts(t, r.dbURL, "ck-")
	r.consumer.start()
	waitEventCounts(t, r.dbURL, "ck-", expectedCounts(1000), 90*time.Second)
	t.Logf("consumer killed with %v stored; after restart all stored", partial)

	// Postgres goes away while events are being consumed, and comes back:
	// the consumer sends the batches back for redelivery meanwhile.
	cluster.stop(t)
	comeAndGo(t, r.broker.MQTTAddr, "pg-", 500)
	deadline = time.Now().Add(30 * time.Second)
	for !strings.Contains(r.consumer.logs.String(), "batch will be redelivered") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cluster.start(t)
	if r.fake != nil {
		// An event in the dead-letter queue never reaches the store: say
		// so at once rather than after the wait below times out.
		defer func() {
			if dlq := r.fake.DLQ(r.group); len(dlq) > 0 {
				t.Errorf("%d messages went to the dead-letter queue during the outage", len(dlq))
			}
		}()
	}
	waitEventCounts(t, r.dbURL, "pg-", expectedCounts(500), 120*time.Second)
	if !strings.Contains(r.consumer.logs.String(), "batch will be redelivered") {
		t.Fatal("the consumer never had to retry: the outage did not hit consumption")
	}
}

func TestRocketMQPoisonMessagesAreParked(t *testing.T) {
	r := startRMQPath(t, pgtest.URL(t))
	poison := []string{`not json at all`, `{"clientId":"p1"}`, `{"clientId":"bad+id","channelId":"c","eventType":"connect","time":1}`}
	sendRaw(t, r.namesrv, r.topic, "connect", poison...)
	// Alibaba's five keys exactly as their service sends them flow on.
	sendRaw(t, r.namesrv, r.topic, "connect",
		`{"clientId":"GID_ali@@@dev-1","channelId":"2b9b1281046046faafe5e0b458e4f00b","eventType":"connect","time":1732240000123,"clientIp":"42.120.74.183:34230"}`)
	r.api.waitOnline("GID_ali@@@dev-1", true, 30*time.Second)
	comeAndGo(t, r.broker.MQTTAddr, "flow-", 10)
	waitEventCounts(t, r.dbURL, "flow-", expectedCounts(10), 30*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, r.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, `SELECT convert_from(raw, 'UTF8'), reason FROM rejected_events ORDER BY id`)
	type rejected struct{ Raw, Reason string }
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[rejected])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(poison) {
		t.Fatalf("rejected %+v, want the %d poison messages", got, len(poison))
	}
	// Messages travel through several queues: compare as a set.
	reasons := map[string]string{}
	for _, g := range got {
		reasons[g.Raw] = g.Reason
	}
	for _, p := range poison {
		if reasons[p] == "" {
			t.Fatalf("poison %q not parked with a reason; parked: %+v", p, got)
		}
	}
	if !strings.Contains(reasons[poison[2]], "clientId") {
		t.Fatalf("reason %q does not name the offending field", reasons[poison[2]])
	}
}

// sendRaw sends bodies to topic with the real rocketmq-client-go producer,
// as another system (or a hostile one) would.
func sendRaw(t *testing.T, namesrv, topic, tag string, bodies ...string) {
	t.Helper()
	rlog.SetLogLevel("error")
	p, err := rocketmq.NewProducer(
		producer.WithNameServer([]string{namesrv}),
		producer.WithGroupName("GID_test_raw"),
		producer.WithInstanceName(fmt.Sprintf("test-raw-%d", time.Now().UnixNano())),
		producer.WithRetry(2),
	)
	if err != nil {
		t.Fatalf("new producer: %v", err)
	}
	if err := p.Start(); err != nil {
		t.Fatalf("start producer: %v", err)
	}
	defer p.Shutdown()
	for _, body := range bodies {
		msg := primitive.NewMessage(topic, []byte(body))
		msg.WithTag(tag)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := p.SendSync(ctx, msg)
		cancel()
		if err != nil || res.Status != primitive.SendOK {
			t.Fatalf("send %q: %v %v", body, res, err)
		}
	}
}

// waitMetric polls the process's /metrics until the series (a metric
// name, with its labels in braces if it has any) has exactly the value.
func (p *proc) waitMetric(series string, want float64, timeout time.Duration) {
	p.t.Helper()
	p.waitSeries(series, func(v float64) bool { return v == want }, fmt.Sprint(want), timeout)
}

// waitSeries polls /metrics until the series' value satisfies ok.
func (p *proc) waitSeries(series string, ok func(float64) bool, want string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, body := p.send("GET", "/metrics", "")
		for _, line := range strings.Split(string(body), "\n") {
			var v float64
			if rest, found := strings.CutPrefix(line, series+" "); found {
				if _, err := fmt.Sscan(rest, &v); err == nil && ok(v) {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("metric %s never became %s", series, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRocketMQKilledBrokerIsFencedOrExpires(t *testing.T) {
	const clients = 1000
	r := startRMQPath(t, pgtest.URL(t), "PRESENCE_NODE_LEASE=2s", "PRESENCE_HEARTBEAT_EVERY=500ms", "PRESENCE_NODE_GRACE=3s")
	connectMany(t, r.broker.MQTTAddr, "rfleet-", clients)
	waitOpenChannels(t, r.dbURL, "rfleet-", clients, 60*time.Second)

	// Killed and restarted at once: the new epoch fences every old channel.
	killed := time.Now()
	r.broker.kill()
	r.broker.start()
	waitOpenChannels(t, r.dbURL, "rfleet-", 0, 60*time.Second)
	t.Logf("broker SIGKILL -> restart -> all %d old channels closed after %v", clients, time.Since(killed))
	if got := reasonCounts(t, r.dbURL, "rfleet-"); got["node_lost"] != clients {
		t.Fatalf("tcpclean reasons %v, want %d node_lost", got, clients)
	}
	rawConnect(t, r.broker.MQTTAddr, "rfleet-1", 300)
	r.api.waitOnline("rfleet-1", true, 10*time.Second)

	// Killed and not restarted: unknown after the lease, offline after the grace.
	killed = time.Now()
	r.broker.kill()
	deadline := time.Now().Add(30 * time.Second)
	for r.api.status("rfleet-1").State != "unknown" {
		if time.Now().After(deadline) {
			t.Fatalf("rfleet-1 never unknown: %+v", r.api.status("rfleet-1"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("broker SIGKILL, no restart -> unknown after %v", time.Since(killed))
	r.api.waitState("rfleet-1", "offline", 30*time.Second)
	t.Logf("broker SIGKILL, no restart -> offline after %v", time.Since(killed))
}

// waitState polls the API until the client's state is want.
func (p *proc) waitState(clientID, want string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := p.status(clientID)
		if string(st.State) == want {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("client %q is %+v after %v, want state %s", clientID, st, timeout, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
