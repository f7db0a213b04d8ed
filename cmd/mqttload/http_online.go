package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// httpOnline measures GET /clients/{id}/online (random known clients, many
// keep-alive connections) and the latency of POST /clients/online with
// 1,000 ids, and — with -pgbench-url — runs `pgbench -S` (select-only, the
// cheapest query PostgreSQL can answer) against the same server just
// before, with the same concurrency and duration, so the two rates come
// from one run on the same machine.
//
// The HTTP client is a minimal HTTP/1.1 keep-alive client over raw
// sockets: net/http's client costs more CPU than the server it measures,
// and on a 2-core machine that would cap the figure at the client's speed.
func httpOnline(ctx context.Context, fs *flag.FlagSet, args []string, out io.Writer) error {
	httpAddr := fs.String("http", "127.0.0.1:8080", "presenced API address (loopback only)")
	clients := fs.Int("clients", 100_000, "known client ids to ask for (prefix + 0..clients-1, as seeded)")
	prefix := fs.String("prefix", "GID_bench@@@dev-", "client id prefix")
	conns := fs.Int("c", 32, "concurrent connections (at most 1000)")
	duration := fs.Duration("d", 10*time.Second, "duration of each measurement (at most 2m)")
	batch := fs.Int("batch", 1000, "ids per POST /clients/online (0 skips the batch measurement)")
	batchN := fs.Int("batch-n", 200, "POST /clients/online requests (at most 10,000)")
	token := fs.String("token", "", "bearer token, if the API needs one")
	var pgbenchURLs []string
	fs.Func("pgbench-url", "run pgbench -S against this database first (loopback or unix socket only; initialized with pgbench -i); repeatable, e.g. once over TCP and once over the unix socket",
		func(v string) error { pgbenchURLs = append(pgbenchURLs, v); return nil })
	pgbenchBin := fs.String("pgbench", "/usr/lib/postgresql/15/bin/pgbench", "pgbench binary")
	pgbenchThreads := fs.Int("pgbench-j", 2, "pgbench worker threads")
	rounds := fs.Int("rounds", 1, "alternate pgbench and the HTTP load this many times (at most 10), so that other load on the machine hits both alike; medians are printed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkLoopback(*httpAddr); err != nil {
		return err
	}
	*conns = min(max(*conns, 1), 1000)
	*duration = min(max(*duration, time.Second), 2*time.Minute)
	*batchN = min(max(*batchN, 1), 10_000)
	auth := ""
	if *token != "" {
		auth = "Authorization: Bearer " + *token + "\r\n"
	}

	*rounds = min(max(*rounds, 1), 10)
	pgRates := make([][]float64, len(pgbenchURLs))
	var httpRates []float64
	for range *rounds {
		for i, u := range pgbenchURLs {
			tps, err := runPgbench(ctx, *pgbenchBin, u, *conns, *pgbenchThreads, *duration)
			if err != nil {
				return err
			}
			pgRates[i] = append(pgRates[i], tps)
			fmt.Fprintf(out, "pgbench -S -c %d -j %d -T %d (%s): %8.0f queries/s\n", *conns, *pgbenchThreads, int(duration.Seconds()), transport(u), tps)
		}
		lat, errs, err := loadOnline(ctx, *httpAddr, auth, *prefix, *clients, *conns, *duration)
		if err != nil {
			return err
		}
		slices.Sort(lat)
		rate := float64(len(lat)) / duration.Seconds()
		httpRates = append(httpRates, rate)
		fmt.Fprintf(out, "GET /clients/{id}/online  -c %d, %v: %8.0f requests/s  p50 %v  p99 %v  max %v  (%d requests, %d not 200 or offline)\n",
			*conns, *duration, rate, percentile(lat, 50), percentile(lat, 99), lat[len(lat)-1], len(lat), errs)
	}
	if *rounds > 1 {
		fmt.Fprintf(out, "medians of %d rounds:", *rounds)
		for i, u := range pgbenchURLs {
			fmt.Fprintf(out, " pgbench -S (%s) %.0f queries/s,", transport(u), median(pgRates[i]))
		}
		fmt.Fprintf(out, " GET online %.0f requests/s\n", median(httpRates))
	}

	if *batch > 0 {
		lat, err := loadBatch(*httpAddr, auth, *prefix, *clients, *batch, *batchN)
		if err != nil {
			return err
		}
		slices.Sort(lat)
		fmt.Fprintf(out, "POST /clients/online, %d ids, %d requests: p50 %v  p99 %v  max %v\n",
			*batch, len(lat), percentile(lat, 50), percentile(lat, 99), lat[len(lat)-1])
	}
	return nil
}

var tpsLine = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)

// transport names how a pgbench URL connects: "unix" for a socket
// directory (?host=/dir), else "tcp".
func transport(dbURL string) string {
	if u, err := url.Parse(dbURL); err == nil && u.Host == "" && strings.HasPrefix(u.Query().Get("host"), "/") {
		return "unix"
	}
	return "tcp"
}

// runPgbench runs pgbench -S and returns its rate.
func runPgbench(ctx context.Context, bin, dbURL string, conns, threads int, d time.Duration) (float64, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return 0, fmt.Errorf("parse -pgbench-url: %w", err)
	}
	if transport(dbURL) != "unix" {
		if err := checkLoopback(u.Host); err != nil {
			return 0, err
		}
	}
	cmd := exec.CommandContext(ctx, bin, "-S", "-n", "-c", strconv.Itoa(conns), "-j", strconv.Itoa(threads),
		"-T", strconv.Itoa(int(d.Seconds())), dbURL)
	output, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("pgbench: %w: %s", err, output)
	}
	m := tpsLine.FindSubmatch(output)
	if m == nil {
		return 0, fmt.Errorf("pgbench printed no rate: %s", output)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// loadOnline runs GET /clients/{id}/online on conns connections for d and
// returns every latency and how many answers were not 200 online:true.
func loadOnline(ctx context.Context, addr, auth, prefix string, clients, conns int, d time.Duration) ([]time.Duration, int, error) {
	var (
		mu     sync.Mutex
		all    []time.Duration
		bad    int
		first  error
		wg     sync.WaitGroup
		online = []byte(`"online":true`)
	)
	end := time.Now().Add(d)
	for range conns {
		wg.Go(func() {
			c, err := dialHTTP(addr)
			if err != nil {
				mu.Lock()
				first = cmpOr(first, err)
				mu.Unlock()
				return
			}
			defer c.conn.Close()
			lat := make([]time.Duration, 0, 1<<16)
			var nbad int
			var req []byte
			for ctx.Err() == nil {
				start := time.Now()
				if start.After(end) {
					break
				}
				req = append(req[:0], "GET /clients/"...)
				req = append(req, url.PathEscape(prefix)...)
				req = strconv.AppendInt(req, int64(rand.IntN(clients)), 10)
				req = append(req, "/online HTTP/1.1\r\nHost: "...)
				req = append(req, addr...) // an open API serves loopback host names only
				req = append(req, "\r\n"...)
				req = append(req, auth...)
				req = append(req, "\r\n"...)
				status, body, err := c.roundTrip(req)
				if err != nil {
					mu.Lock()
					first = cmpOr(first, err)
					mu.Unlock()
					break
				}
				lat = append(lat, time.Since(start))
				if status != 200 || !bytes.Contains(body, online) {
					nbad++
				}
			}
			mu.Lock()
			all = append(all, lat...)
			bad += nbad
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(all) == 0 {
		return nil, 0, fmt.Errorf("no request succeeded: %v", first)
	}
	return all, bad, nil
}

// loadBatch sends n POST /clients/online with batch random ids each, one
// at a time, and returns their latencies.
func loadBatch(addr, auth, prefix string, clients, batch, n int) ([]time.Duration, error) {
	c, err := dialHTTP(addr)
	if err != nil {
		return nil, err
	}
	defer c.conn.Close()
	var lat []time.Duration
	for range n {
		var body bytes.Buffer
		body.WriteString(`{"clientIds":[`)
		for i := range batch {
			if i > 0 {
				body.WriteByte(',')
			}
			fmt.Fprintf(&body, `"%s%d"`, prefix, rand.IntN(clients))
		}
		body.WriteString(`]}`)
		req := fmt.Appendf(nil, "POST /clients/online HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s",
			addr, body.Len(), auth, body.Bytes())
		start := time.Now()
		status, resp, err := c.roundTrip(req)
		if err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(start))
		if status != 200 {
			return nil, fmt.Errorf("POST /clients/online: status %d: %s", status, resp)
		}
	}
	return lat, nil
}

// httpConn is one keep-alive HTTP/1.1 connection.
type httpConn struct {
	conn net.Conn
	r    *bufio.Reader
	body []byte
}

func dialHTTP(addr string) (*httpConn, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return &httpConn{conn: conn, r: bufio.NewReaderSize(conn, 64<<10)}, nil
}

// roundTrip writes req and reads one response with a Content-Length body
// (what presenced always sends for these routes).
func (c *httpConn) roundTrip(req []byte) (status int, body []byte, err error) {
	_ = c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.conn.Write(req); err != nil {
		return 0, nil, err
	}
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return 0, nil, err
	}
	if len(line) < 12 {
		return 0, nil, errors.New("short status line")
	}
	status, _ = strconv.Atoi(string(line[9:12]))
	length := -1
	for {
		h, err := c.r.ReadSlice('\n')
		if err != nil {
			return 0, nil, err
		}
		if len(h) <= 2 {
			break
		}
		if k, v, ok := strings.Cut(string(h), ":"); ok && strings.EqualFold(k, "Content-Length") {
			length, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if length < 0 {
		return 0, nil, errors.New("response without Content-Length")
	}
	if cap(c.body) < length {
		c.body = make([]byte, length)
	}
	c.body = c.body[:length]
	if _, err := io.ReadFull(c.r, c.body); err != nil {
		return 0, nil, err
	}
	return status, c.body, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
