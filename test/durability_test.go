package test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Issue 11, "Nothing accepted is ever lost, whatever dies": each test runs
// a churn of raw MQTT clients against "presenced serve", injects a fault
// mid-churn — the private PostgreSQL killed or frozen, presenced killed,
// the disk full, an external database restarted or unreachable at
// shutdown — and then checks that every connect acknowledged with
// CONNACK 0, and the tcpclean of its connection, reached the store.

// churnPrefix names the client ids of one churn of a test.
func churnPrefix(t *testing.T, phase string) string {
	return "churn-" + t.Name() + "-" + phase + "-"
}

// skipLong skips the fault tests in -short runs: each takes 10–40 s.
func skipLong(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("fault injection under churn: skipped with -short")
	}
}

// recovery is how a process came back to readiness after a fault.
type recovery struct {
	took     time.Duration // from the fault to /readyz 200 with done() true
	notReady readiness     // the first non-200 answer seen, if any
	sawDown  bool
}

// waitRecovered polls /readyz from since until it answers 200 and done()
// (may be nil) is true, recording the first answer that was not 200.
func waitRecovered(t *testing.T, p *proc, since time.Time, timeout time.Duration, done func() bool) recovery {
	t.Helper()
	var rec recovery
	deadline := time.Now().Add(timeout)
	for {
		if p.exited() {
			t.Fatalf("presenced exited (%v) before it recovered\n%s", p.exitErr, tail(p.logs.String(), 80))
		}
		r, err := readyz(p.HTTPAddr)
		if err == nil && r.code != http.StatusOK && !rec.sawDown {
			rec.notReady, rec.sawDown = r, true
		}
		if err == nil && r.code == http.StatusOK && (done == nil || done()) {
			rec.took = time.Since(since)
			return rec
		}
		if time.Now().After(deadline) {
			t.Fatalf("presenced not ready %v after the fault (last: %+v, %v)\n%s", timeout, r, err, tail(p.logs.String(), 80))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startPrivateServe starts serve with its private PostgreSQL and makes
// sure both are stopped when the test ends.
func startPrivateServe(t *testing.T) *proc {
	t.Helper()
	p := startServe(t, "")
	stopAtCleanup(p, servePGDir(p.DataDir))
	return p
}

func TestPrivatePostgresKilledMidChurnLosesNothing(t *testing.T) {
	skipLong(t)
	p := startPrivateServe(t)
	pgDir := servePGDir(p.DataDir)
	prefix := churnPrefix(t, "a")
	ch := startChurn(t, churnConfig{Addr: p.MQTTAddr, Prefix: prefix})
	ch.watch = p
	ch.waitMoreAcked(500, 30*time.Second)

	pid := livePostmaster(t, pgDir)
	killedAt, ackedAtKill := time.Now(), ch.acked.Load()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL postmaster %d: %v", pid, err)
	}
	const restarts = "presenced_postgres_restarts_total"
	rec := waitRecovered(t, p, killedAt, 90*time.Second, func() bool {
		v, ok, _ := metricValue(p.HTTPAddr, restarts)
		return ok && v >= 1
	})
	t.Logf("postmaster %d SIGKILLed: /readyz 200 again after %v; %d connects acknowledged meanwhile",
		pid, rec.took.Round(time.Millisecond), ch.acked.Load()-ackedAtKill)
	if !rec.sawDown {
		t.Errorf("/readyz never answered other than 200 while the private PostgreSQL was down")
	} else {
		t.Logf("/readyz while down: %d %s %s", rec.notReady.code, rec.notReady.contentType, rec.notReady.body)
		if rec.notReady.code != http.StatusServiceUnavailable || !strings.Contains(rec.notReady.contentType, "problem+json") ||
			!strings.Contains(rec.notReady.body, "detail") {
			t.Errorf("/readyz while down answered %d %q %s, want 503 problem+json with a detail", rec.notReady.code, rec.notReady.contentType, rec.notReady.body)
		}
	}
	if v, _, _ := metricValue(p.HTTPAddr, restarts); v < 1 {
		t.Errorf("%s = %v after a restart", restarts, v)
	}
	if pm := livePostmaster(t, pgDir); pm == pid {
		t.Errorf("postmaster pid still %d after SIGKILL", pid)
	}

	ch.waitMoreAcked(500, 30*time.Second) // churn goes on after the recovery
	res := ch.Stop()
	verifyChurn(t, p, privateDBURL(p.DataDir), prefix, res, 60*time.Second)
}

func TestPresencedKilledMidChurnLosesNothing(t *testing.T) {
	skipLong(t)
	p := startPrivateServe(t)
	prefix := churnPrefix(t, "a")
	ch := startChurn(t, churnConfig{Addr: p.MQTTAddr, Prefix: prefix})
	ch.watch = p
	ch.waitMoreAcked(1000, 30*time.Second)

	ch.watch = nil
	ackedAtKill := ch.acked.Load()
	p.kill() // SIGKILL: no tcpclean for the connections open now
	t.Logf("presenced SIGKILLed after %d acknowledged connects", ackedAtKill)
	// The churn goes on against a closed port until presenced is back.
	ch.waitCount("dial failures", &ch.dialFailed, ch.dialFailed.Load()+20, 20*time.Second)
	restartedAt := time.Now()
	p.start() // same data dir, --node, addresses; waits for /readyz 200
	stopAtCleanup(p, servePGDir(p.DataDir))
	t.Logf("presenced restarted and ready in %v", time.Since(restartedAt).Round(time.Millisecond))
	ch.watch = p
	ch.waitMoreAcked(1000, 30*time.Second)
	res := ch.Stop()
	report := verifyChurn(t, p, privateDBURL(p.DataDir), prefix, res, 60*time.Second)
	t.Logf("closed by fencing (node_lost): %d", report.reasons["node_lost"])
}

func TestFullDiskMidChurnRefusesThenRecovers(t *testing.T) {
	skipLong(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	disk, err := mountTmpfs(t, 384)
	if err != nil {
		t.Skipf("no tmpfs: %v", err)
	}
	p := &proc{t: t, MQTTAddr: freeAddr(t), HTTPAddr: freeAddr(t), Node: "node-" + t.Name(), DataDir: filepath.Join(disk, "data")}
	p.start()
	stopAtCleanup(p, servePGDir(p.DataDir))
	t.Logf("presenced ready on a %d MiB tmpfs, %d MiB free", 384, freeMB(disk))

	prefix := churnPrefix(t, "a")
	ch := startChurn(t, churnConfig{Addr: p.MQTTAddr, Prefix: prefix, Workers: 100})
	ch.watch = p
	ch.waitMoreAcked(500, 30*time.Second)

	// Clients admitted before the disk fills, closed while it is full:
	// their tcpcleans must be recorded by the broker itself (reason
	// client_closed or client_disconnect), not repaired later.
	heldPrefix := churnPrefix(t, "held")
	var held []net.Conn
	heldIDs := make([]string, 50)
	for i := range heldIDs {
		heldIDs[i] = fmt.Sprintf("%s%d", heldPrefix, i)
		conn, code := rawConnect(t, p.MQTTAddr, heldIDs[i], 60)
		if code != 0 {
			t.Fatalf("CONNACK %#x for %s before the disk filled", code, heldIDs[i])
		}
		held = append(held, conn)
	}

	filler := filepath.Join(disk, "filler")
	t.Cleanup(func() { os.Remove(filler) })
	written, err := fillDisk(filler)
	if err != nil {
		t.Fatalf("fill the disk: %v", err)
	}
	fullAt, ackedAtFull := time.Now(), ch.acked.Load()
	t.Logf("disk filled with %d MiB: %d MiB free; churn so far: %s", written>>20, freeMB(disk), ch.counts())
	ch.waitCount("CONNACK 0x03 while the disk is full", &ch.unavailable, ch.unavailable.Load()+20, 30*time.Second)
	t.Logf("refusing %v after the disk filled: %s (%d acknowledged since the fill)",
		time.Since(fullAt).Round(time.Millisecond), ch.counts(), ch.acked.Load()-ackedAtFull)
	// Half of them say DISCONNECT, half just close. The broker writes the
	// disconnect before it acts on it, so a connection it closes after
	// DISCONNECT shows that the event was written although the disk is full.
	polite := closeHeld(held)
	closedWhileFull := waitHeldClosed(polite, 5*time.Second)
	if closedWhileFull < len(polite) {
		backlog, _, _ := metricValue(p.HTTPAddr, "presenced_outbox_backlog_records")
		t.Errorf("disk full: the broker closed only %d of %d admitted clients within 5 s of their DISCONNECT: their events were not written (outbox backlog %v, %d MiB free)\n%s",
			closedWhileFull, len(polite), backlog, freeMB(disk), grepLines(p.logs.String(), "write failed", 3))
	}
	// The disk stays full for at least 3 s while the churn goes on.
	time.Sleep(time.Until(fullAt.Add(3 * time.Second)))
	if r, err := readyz(p.HTTPAddr); err == nil {
		t.Logf("/readyz while full: %d %s", r.code, r.body)
	}
	t.Logf("disk full for %v: %s; %d MiB free", time.Since(fullAt).Round(time.Millisecond), ch.counts(), freeMB(disk))

	if err := os.Remove(filler); err != nil {
		t.Fatalf("remove the filler: %v", err)
	}
	freedAt := time.Now()
	t.Logf("filler removed: %d MiB free", freeMB(disk))
	ch.waitMoreAcked(300, 90*time.Second)
	t.Logf("connects acknowledged again %v after space returned", time.Since(freedAt).Round(time.Millisecond))
	if n := waitHeldClosed(polite, 60*time.Second); n < len(polite) {
		t.Errorf("the broker closed only %d of %d clients after their DISCONNECT once space returned", n, len(polite))
	}
	rec := waitRecovered(t, p, freedAt, 90*time.Second, nil)
	t.Logf("/readyz 200 %v after space returned", rec.took.Round(time.Millisecond))
	res := ch.Stop()
	verifyChurn(t, p, privateDBURL(p.DataDir), prefix, res, 90*time.Second)
	report := verifyChurn(t, p, privateDBURL(p.DataDir), heldPrefix, churnResult{Acked: heldIDs}, 30*time.Second)
	for reason, n := range report.reasons {
		if reason != "client_closed" && reason != "client_disconnect" {
			t.Errorf("%d clients closed while the disk was full have tcpclean reason %q, want client_closed or client_disconnect: their tcpclean was not recorded by the broker", n, reason)
		}
	}
}

func TestPostgresStoppedAndContinuedLosesNothing(t *testing.T) {
	skipLong(t)
	p := startPrivateServe(t)
	prefix := churnPrefix(t, "a")
	ch := startChurn(t, churnConfig{Addr: p.MQTTAddr, Prefix: prefix})
	ch.watch = p
	ch.waitMoreAcked(500, 30*time.Second)

	thaw := freezeServer(t, servePGDir(p.DataDir))
	frozenAt, ackedAtFreeze := time.Now(), ch.acked.Load()
	// Connects are acknowledged from the outbox while the database is
	// frozen; the freeze lasts at least 3 s.
	ch.waitMoreAcked(300, 30*time.Second)
	time.Sleep(time.Until(frozenAt.Add(3 * time.Second)))
	t.Logf("PostgreSQL frozen for %v; %d connects acknowledged meanwhile", time.Since(frozenAt).Round(time.Millisecond), ch.acked.Load()-ackedAtFreeze)
	thaw()
	thawedAt := time.Now()
	rec := waitRecovered(t, p, thawedAt, 60*time.Second, nil)
	t.Logf("/readyz 200 %v after SIGCONT (not ready seen: %v %d)", rec.took.Round(time.Millisecond), rec.sawDown, rec.notReady.code)
	ch.waitMoreAcked(500, 30*time.Second)
	res := ch.Stop()
	verifyChurn(t, p, privateDBURL(p.DataDir), prefix, res, 60*time.Second)
}

// externalDB is a PostgreSQL of the test's own that presenced reaches over
// TCP with --database-url, as an external server.
type externalDB struct {
	*privateCluster
	url string // TCP on loopback, with a role whose password survives restarts
}

// pgDir is the cluster directory (postmaster.pid).
func (db *externalDB) pgDir() string { return filepath.Join(db.opts.DataDir, "pg") }

func (db *externalDB) dbURL() (string, error) { return db.url, nil }

// startExternalDB starts a cluster on a fixed port and creates a login
// role for presenced. (The cluster's LoopbackURL password is set anew at
// every Start, so it would not survive the restart of the test.)
func startExternalDB(t *testing.T) *externalDB {
	t.Helper()
	c := startPrivateCluster(t)
	var secret [12]byte
	_, _ = rand.Read(secret[:])
	password := hex.EncodeToString(secret[:])
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL())
	if err != nil {
		t.Fatalf("connect to the external PostgreSQL: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE ROLE presenced_e2e LOGIN SUPERUSER PASSWORD '"+password+"'"); err != nil {
		t.Fatalf("create role: %v", err)
	}
	u := url.URL{
		Scheme: "postgres", User: url.UserPassword("presenced_e2e", password),
		Host: net.JoinHostPort("127.0.0.1", fmt.Sprint(c.opts.Port)), Path: "/presenced", RawQuery: "sslmode=disable",
	}
	return &externalDB{privateCluster: c, url: u.String()}
}

func TestExternalDatabaseRestartLosesNothing(t *testing.T) {
	skipLong(t)
	db := startExternalDB(t)
	p := startServe(t, db.url)
	stopAtCleanup(p, "")
	prefix := churnPrefix(t, "a")
	ch := startChurn(t, churnConfig{Addr: p.MQTTAddr, Prefix: prefix})
	ch.watch = p
	ch.waitMoreAcked(500, 30*time.Second)

	stoppedAt, ackedAtStop := time.Now(), ch.acked.Load()
	db.stop(t) // fast shutdown: presenced's connections are cut
	ch.waitMoreAcked(300, 30*time.Second)
	t.Logf("external PostgreSQL stopped; %d connects acknowledged while it was down", ch.acked.Load()-ackedAtStop)
	db.start(t) // same data directory and port
	rec := waitRecovered(t, p, stoppedAt, 60*time.Second, nil)
	t.Logf("/readyz 200 %v after the stop (not ready seen: %v %d)", rec.took.Round(time.Millisecond), rec.sawDown, rec.notReady.code)
	ch.waitMoreAcked(500, 30*time.Second)
	res := ch.Stop()
	verifyChurn(t, p, db.dbURL, prefix, res, 60*time.Second)
}

// outboxLeftLog matches the log line of a shutdown that left events in the
// outbox for the next start.
var outboxLeftLog = regexp.MustCompile(`(?i)(left|stay|remain|kept|keep)[^\n]*outbox|outbox[^\n]*next start`)

func TestShutdownWithUnreachableDatabaseKeepsEventsForNextStart(t *testing.T) {
	skipLong(t)
	const shutdownTimeout = 3 * time.Second
	db := startExternalDB(t)
	p := &proc{t: t, MQTTAddr: freeAddr(t), HTTPAddr: freeAddr(t), DBURL: db.url, Node: "node-" + t.Name(), DataDir: t.TempDir(),
		Args: []string{"--shutdown-timeout", shutdownTimeout.String()}}
	p.start()
	stopAtCleanup(p, "")
	prefix := churnPrefix(t, "a")
	ch := startChurn(t, churnConfig{Addr: p.MQTTAddr, Prefix: prefix})
	ch.watch = p
	ch.waitMoreAcked(300, 30*time.Second)

	thaw := freezeServer(t, db.pgDir())
	// These are acknowledged from the outbox alone: the database is frozen.
	ch.waitMoreAcked(300, 30*time.Second)
	ch.watch = nil
	took, err := p.stopWithin(30 * time.Second)
	res := ch.Stop()
	t.Logf("SIGTERM with the database frozen: exit after %v (%v); churn %v", took.Round(time.Millisecond), err, res)
	if err != nil {
		t.Fatalf("presenced exited with %v after a shutdown whose drain could not finish; want status 0\n%s", err, tail(p.logs.String(), 80))
	}
	// The bound is generous (shutdown timeout + 10 s): it is a promise
	// kept or not, not a speed.
	if bound := shutdownTimeout + 10*time.Second; took > bound {
		t.Errorf("presenced took %v to exit after SIGTERM with --shutdown-timeout %v (bound %v)\n%s",
			took.Round(time.Millisecond), shutdownTimeout, bound, tail(p.logs.String(), 12))
	}
	if line := outboxLeftLog.FindString(p.logs.String()); line == "" {
		t.Errorf("the log does not say that events were left in the outbox\n%s", tail(p.logs.String(), 40))
	} else {
		t.Logf("log: …%s…", line)
	}

	thaw()
	p.start() // same data dir and node: the outbox is applied
	stopAtCleanup(p, "")
	verifyChurn(t, p, db.dbURL, prefix, res, 60*time.Second)
}

// closeHeld closes the connections, every other one after a DISCONNECT;
// it returns those, for waitHeldClosed.
func closeHeld(conns []net.Conn) (polite []net.Conn) {
	for i, conn := range conns {
		if i%2 == 0 {
			if _, err := conn.Write(disconnectPacket); err == nil {
				polite = append(polite, conn)
				continue
			}
		}
		conn.Close()
	}
	return polite
}

// waitHeldClosed waits, up to timeout for all of them at once, until the
// broker has closed the connections, and returns how many it closed (a
// connection it closed before reads as closed at once).
func waitHeldClosed(conns []net.Conn, timeout time.Duration) int {
	var (
		wg     sync.WaitGroup
		closed atomic.Int64
	)
	for _, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if readUntilClosed(conn, timeout) == nil {
				closed.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(closed.Load())
}

// grepLines returns the first n lines of text that contain word.
func grepLines(text, word string, n int) string {
	var out []string
	for line := range strings.Lines(text) {
		if strings.Contains(line, word) && len(out) < n {
			out = append(out, strings.TrimRight(line, "\n"))
		}
	}
	return strings.Join(out, "\n")
}
