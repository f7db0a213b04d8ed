package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// storm measures a connect storm: n clients connect, workers at a time,
// and stay connected (unlike connect-rate, which disconnects each one).
// It reports connects/s from the storm's start to the last CONNACK and the
// CONNECT→CONNACK latencies. With -http (presenced's API) it also polls
// POST /clients/online, from the storm's start, about every client that
// has its CONNACK and was not yet answered online, until every connected
// client was answered online; then it closes them all and polls until
// every one is answered offline. So the figures say when the REST view
// caught up, not only when the broker answered. Asking only about clients
// that have their CONNACK keeps the poller's load on the API (and on the
// shared cores) to a few lookups per client.
func storm(ctx context.Context, fs *flag.FlagSet, args []string, out io.Writer) error {
	mqttAddr := fs.String("mqtt", "127.0.0.1:1883", "broker address (loopback only)")
	n := fs.Int("n", 5000, "clients to connect and keep open (at most 100,000)")
	workers := fs.Int("workers", 50, "concurrent connecting clients (at most 2000)")
	duration := fs.Duration("duration", time.Minute, "give up the storm, and each wait for the REST view, after this long (at most 5m)")
	httpAddr := fs.String("http", "", "presenced API address (loopback only): poll POST /clients/online until all are online, then offline")
	pollPause := fs.Duration("poll-pause", 5*time.Millisecond, "pause between polling passes (at most 1s): the resolution of the REST figures, traded against the poller's load on the shared cores")
	token := fs.String("token", "", "bearer token, if the API needs one")
	label := fs.String("label", "", "name of the broker in the result line")
	pid := fs.Int("pid", 0, "broker process id: report the CPU time per connect of it, of its child processes (serve's private PostgreSQL) and of this tool")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkLoopback(*mqttAddr); err != nil {
		return err
	}
	if *httpAddr != "" {
		if err := checkLoopback(*httpAddr); err != nil {
			return err
		}
	}
	*n = min(max(*n, 1), 100_000)
	*workers = min(max(*workers, 1), 2000, *n)
	*duration = min(max(*duration, time.Second), 5*time.Minute)
	*pollPause = min(max(*pollPause, 0), time.Second)
	auth := ""
	if *token != "" {
		auth = "Authorization: Bearer " + *token + "\r\n"
	}

	prefix := fmt.Sprintf("storm-%d-", time.Now().UnixNano())
	ids := make([]string, *n)
	for i := range ids {
		ids[i] = prefix + strconv.Itoa(i)
	}
	conns := make([]net.Conn, *n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()

	var poll *onlinePoll
	if *httpAddr != "" {
		var err error
		if poll, err = newOnlinePoll(*httpAddr, auth, ids, *pollPause); err != nil {
			return err
		}
		defer poll.close()
	}

	var cpuBefore cpuSample
	if *pid > 0 {
		var err error
		if cpuBefore, err = sampleCPU(*pid); err != nil {
			return err
		}
	}
	stormCtx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	acked := newAckedQueue(*n)
	start := time.Now()
	var allOnline chan pollResult
	if poll != nil {
		allOnline = make(chan pollResult, 1)
		go func() { allOnline <- poll.until(stormCtx, true, acked) }()
	}
	res := connectAll(stormCtx, *mqttAddr, ids, conns, *workers, acked)
	var cpuAfter cpuSample
	if *pid > 0 {
		var err error
		if cpuAfter, err = sampleCPU(*pid); err != nil {
			return err
		}
	}
	if res.connected == 0 {
		return fmt.Errorf("no client connected: %v", res.firstErr)
	}
	stormTook := res.lastConnack.Sub(start)
	slices.Sort(res.latencies)
	fmt.Fprintf(out, "storm %s: %d of %d clients connected in %v (first CONNECT to last CONNACK) with %d workers: %.0f connects/s; latency p50 %v p99 %v max %v; %d failed\n",
		*label, res.connected, *n, stormTook.Round(time.Millisecond), *workers, float64(res.connected)/stormTook.Seconds(),
		percentile(res.latencies, 50).Round(time.Microsecond), percentile(res.latencies, 99).Round(time.Microsecond),
		res.latencies[len(res.latencies)-1].Round(time.Microsecond), res.failed)
	if res.firstErr != nil {
		fmt.Fprintf(out, "  first failure: %v\n", res.firstErr)
	}
	if *pid > 0 {
		used := cpuAfter.sub(cpuBefore)
		per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(res.connected) }
		fmt.Fprintf(out, "  CPU during the storm: broker %v (%.0f µs per connect), its child processes %v (%.0f µs), load tool %v (%.0f µs)\n",
			used.broker, per(used.broker), used.descendants, per(used.descendants), used.self, per(used.self))
	}
	if poll == nil {
		closeAll(conns)
		return nil
	}
	on := <-allOnline
	if on.err != nil {
		return fmt.Errorf("waiting for all online: %w", on.err)
	}
	slices.Sort(on.lags)
	fmt.Fprintf(out, "  all %d connected answered online over REST %v after the storm's start, %v after the last CONNACK; CONNACK to answered online p50 %v p99 %v (%d POST /clients/online, %d ids asked)\n",
		res.connected, on.at.Sub(start).Round(time.Millisecond), on.at.Sub(res.lastConnack).Round(time.Millisecond),
		percentile(on.lags, 50).Round(time.Microsecond), percentile(on.lags, 99).Round(time.Microsecond), on.requests, on.asked)

	offCtx, cancelOff := context.WithTimeout(ctx, *duration)
	defer cancelOff()
	closing := newAckedQueue(*n)
	closeStart := time.Now()
	for i, c := range conns {
		if c != nil {
			c.Write(disconnectPacket)
			c.Close()
			conns[i] = nil
			closing.add(i)
		}
	}
	closed := time.Now()
	closing.finish()
	off := poll.until(offCtx, false, closing)
	if off.err != nil {
		return fmt.Errorf("waiting for all offline: %w", off.err)
	}
	fmt.Fprintf(out, "  all %d closed (DISCONNECT) in %v; all answered offline %v after the first close (%d POST /clients/online, %d ids asked)\n",
		res.connected, closed.Sub(closeStart).Round(time.Millisecond), off.at.Sub(closeStart).Round(time.Millisecond), off.requests, off.asked)
	return nil
}

type stormResult struct {
	connected, failed int
	lastConnack       time.Time
	latencies         []time.Duration
	firstErr          error
}

// connectAll connects ids[i] into conns[i], workers at a time, each client
// once (a failed one is not retried: a storm measures what gets in), and
// adds each client that has its CONNACK to acked.
func connectAll(ctx context.Context, addr string, ids []string, conns []net.Conn, workers int, acked *ackedQueue) stormResult {
	var (
		next atomic.Int64
		mu   sync.Mutex
		res  stormResult
		wg   sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			scratch := make([]byte, 0, 128)
			var lat []time.Duration
			var last time.Time
			var failed int
			var firstErr error
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(ids) {
					break
				}
				conn, took, err := mqttDial(addr, dialSource(addr, i+w), ids[i], 300, 10*time.Second, scratch)
				if err != nil {
					failed++
					firstErr = cmpOr(firstErr, err)
					continue
				}
				conns[i] = conn
				lat = append(lat, took)
				last = acked.add(i)
			}
			mu.Lock()
			res.latencies = append(res.latencies, lat...)
			res.connected += len(lat)
			res.failed += failed
			res.firstErr = cmpOr(res.firstErr, firstErr)
			if last.After(res.lastConnack) {
				res.lastConnack = last
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	acked.finish()
	if ctx.Err() != nil {
		res.firstErr = cmpOr(res.firstErr, fmt.Errorf("storm stopped after -duration: %w", ctx.Err()))
	}
	return res
}

// closeAll sends DISCONNECT on every open connection and closes it.
func closeAll(conns []net.Conn) {
	for i, c := range conns {
		if c != nil {
			c.Write(disconnectPacket)
			c.Close()
			conns[i] = nil
		}
	}
}

// ackedQueue hands the poller the clients, by index, whose state it may
// now ask about (CONNACK received, or connection closed), with the time
// each became so.
type ackedQueue struct {
	mu   sync.Mutex
	idx  []int
	at   []time.Time // by client index
	done bool        // no more will be added
}

func newAckedQueue(n int) *ackedQueue {
	return &ackedQueue{idx: make([]int, 0, n), at: make([]time.Time, n)}
}

// add queues client i and returns the time it was queued.
func (q *ackedQueue) add(i int) time.Time {
	now := time.Now()
	q.mu.Lock()
	q.idx = append(q.idx, i)
	q.at[i] = now
	q.mu.Unlock()
	return now
}

func (q *ackedQueue) finish() {
	q.mu.Lock()
	q.done = true
	q.mu.Unlock()
}

// since returns the clients queued after the first `from`, and whether
// the queue is finished.
func (q *ackedQueue) since(from int) ([]int, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.idx[from:len(q.idx):len(q.idx)], q.done
}

func (q *ackedQueue) queuedAt(i int) time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.at[i]
}

// onlinePoll asks POST /clients/online about the storm's ids over one
// keep-alive connection.
type onlinePoll struct {
	c     *httpConn
	host  string // the Host header: the API's address (an open API serves loopback names only)
	auth  string
	ids   []string
	pause time.Duration
}

type pollResult struct {
	at       time.Time       // when the last client was answered as wanted
	lags     []time.Duration // per client: queued to answered as wanted
	requests int
	asked    int // ids asked, repeats included
	err      error
}

// maxOnlineBatch is the API's cap on ids per POST /clients/online.
const maxOnlineBatch = 1000

func newOnlinePoll(addr, auth string, ids []string, pause time.Duration) (*onlinePoll, error) {
	c, err := dialHTTP(addr)
	if err != nil {
		return nil, err
	}
	return &onlinePoll{c: c, host: addr, auth: auth, ids: ids, pause: pause}, nil
}

func (p *onlinePoll) close() { p.c.conn.Close() }

// until polls, in passes of at most 1,000 ids a request, the clients q
// has queued that were not yet answered as wanted (online or offline),
// until q is finished and none is left, or ctx ends. A client answered as
// wanted is not asked again: the storm's clients stay connected (or
// closed) while it waits.
func (p *onlinePoll) until(ctx context.Context, online bool, q *ackedQueue) pollResult {
	var (
		res   pollResult
		left  []int
		taken int
		body  bytes.Buffer
		req   []byte
	)
	for {
		fresh, done := q.since(taken)
		taken += len(fresh)
		left = append(left, fresh...)
		if len(left) == 0 && done {
			res.at = time.Now()
			return res
		}
		if len(left) == 0 {
			if sleepCtx(ctx, p.pause) != nil {
				res.err = fmt.Errorf("%d of %d clients queued, all answered online=%v: %w", taken, len(p.ids), online, ctx.Err())
				return res
			}
			continue
		}
		if err := ctx.Err(); err != nil {
			res.err = fmt.Errorf("%d of %d queued clients still not answered online=%v: %w", len(left), taken, online, err)
			return res
		}
		var still []int
		for chunk := range slices.Chunk(left, maxOnlineBatch) {
			body.Reset()
			body.WriteString(`{"clientIds":[`)
			for k, i := range chunk {
				if k > 0 {
					body.WriteByte(',')
				}
				body.WriteByte('"')
				body.WriteString(p.ids[i]) // storm ids need no JSON escaping
				body.WriteByte('"')
			}
			body.WriteString(`]}`)
			req = fmt.Appendf(req[:0], "POST /clients/online HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n",
				p.host, body.Len(), p.auth)
			req = append(req, body.Bytes()...)
			status, resp, err := p.c.roundTrip(req)
			answered := time.Now()
			res.requests++
			res.asked += len(chunk)
			if err != nil {
				res.err = fmt.Errorf("POST /clients/online: %w", err)
				return res
			}
			if status != 200 {
				res.err = fmt.Errorf("POST /clients/online: status %d: %s", status, resp)
				return res
			}
			var answer struct {
				Results []struct {
					ClientID string `json:"clientId"`
					Online   bool   `json:"online"`
				} `json:"results"`
			}
			if err := json.Unmarshal(resp, &answer); err != nil {
				res.err = fmt.Errorf("POST /clients/online: decode: %w", err)
				return res
			}
			if len(answer.Results) != len(chunk) {
				res.err = fmt.Errorf("POST /clients/online: %d results for %d ids", len(answer.Results), len(chunk))
				return res
			}
			for k, r := range answer.Results {
				i := chunk[k]
				if r.ClientID != p.ids[i] {
					res.err = fmt.Errorf("POST /clients/online: result %d is for %q, asked %q", k, r.ClientID, p.ids[i])
					return res
				}
				if r.Online != online {
					still = append(still, i)
					continue
				}
				res.lags = append(res.lags, answered.Sub(q.queuedAt(i)))
			}
		}
		left = still
		if len(left) > 0 && sleepCtx(ctx, p.pause) != nil {
			res.err = fmt.Errorf("%d of %d queued clients still not answered online=%v: %w", len(left), taken, online, ctx.Err())
			return res
		}
	}
}

// cpuSample is the CPU time used so far by a broker process, by its
// descendants (presenced serve's private PostgreSQL), and by this load
// tool, from /proc (clock ticks of 10 ms: a storm of a few hundred
// milliseconds reads within a few percent).
type cpuSample struct{ broker, descendants, self time.Duration }

func sampleCPU(pid int) (cpuSample, error) {
	var s cpuSample
	stats, err := procStats()
	if err != nil {
		return s, err
	}
	parent := make(map[int]int, len(stats))
	for p, st := range stats {
		parent[p] = st.ppid
	}
	for p, st := range stats {
		switch {
		case p == pid:
			s.broker = st.cpu
		case descendsFrom(p, pid, parent):
			s.descendants += st.cpu
		}
	}
	if st, ok := stats[os.Getpid()]; ok {
		s.self = st.cpu
	}
	if _, ok := stats[pid]; !ok {
		return s, fmt.Errorf("no process %d", pid)
	}
	return s, nil
}

func (s cpuSample) sub(t cpuSample) cpuSample {
	return cpuSample{s.broker - t.broker, s.descendants - t.descendants, s.self - t.self}
}

func descendsFrom(p, ancestor int, parent map[int]int) bool {
	for range 64 { // process trees here are shallow; the bound guards a cycle
		pp, ok := parent[p]
		if !ok || pp <= 1 {
			return false
		}
		if pp == ancestor {
			return true
		}
		p = pp
	}
	return false
}

type procStat struct {
	ppid int
	cpu  time.Duration // utime + stime
}

// procStats reads ppid and CPU time of every process from /proc/*/stat.
func procStats() (map[int]procStat, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	stats := make(map[int]procStat, len(entries))
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// The command name in parentheses may hold spaces: fields
		// count from the last ')'.
		i := bytes.LastIndexByte(data, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(data[i+1:]))
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		stats[p] = procStat{ppid: ppid, cpu: time.Duration(utime+stime) * 10 * time.Millisecond}
	}
	return stats, nil
}
