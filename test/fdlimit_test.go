package test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// connectOutcome is what one client got from a broker at its limit.
type connectOutcome struct {
	conn net.Conn
	code int   // CONNACK return code, -1 without a CONNACK
	err  error // why there was no CONNACK
}

// tryConnect sends CONNECT and waits up to 10 s for CONNACK or the close.
func tryConnect(addr, clientID string) connectOutcome {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return connectOutcome{code: -1, err: err}
	}
	out := connectOutcome{conn: conn, code: -1}
	if _, err := conn.Write(connectPacket(clientID, 60)); err != nil {
		out.err = err
		return out
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var connack [4]byte
	if _, err := io.ReadFull(conn, connack[:]); err != nil {
		out.err = err
		return out
	}
	_ = conn.SetReadDeadline(time.Time{})
	out.code = int(connack[3])
	return out
}

// TestFileLimitShedsClientsWhileAPIAndDatabaseKeepWorking runs presenced
// under a 2,048-file limit and connects 3,000 clients at once: the broker
// admits what its derived connection limit allows, closes the rest at
// once (none is left hanging without an answer), and the API — answers
// from the view and from the database — keeps working throughout.
func TestFileLimitShedsClientsWhileAPIAndDatabaseKeepWorking(t *testing.T) {
	if testing.Short() {
		t.Skip("connects 3,000 clients")
	}
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) is not installed")
	}
	const fileLimit, clients = 2048, 3000
	const maxConnections = fileLimit - 256 // the derived --mqtt-max-connections
	p := &proc{t: t, MQTTAddr: freeAddr(t), HTTPAddr: freeAddr(t), Node: "node-fdlimit", DataDir: t.TempDir(),
		Wrapper: []string{prlimit, fmt.Sprintf("--nofile=%d:%d", fileLimit, fileLimit)}}
	p.start()

	outcomes := make([]connectOutcome, clients)
	var wg sync.WaitGroup
	dialing := make(chan struct{}, 200)
	for i := range outcomes {
		dialing <- struct{}{}
		wg.Go(func() {
			defer func() { <-dialing }()
			outcomes[i] = tryConnect(p.MQTTAddr, fmt.Sprintf("fd-%d", i))
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, o := range outcomes {
			if o.conn != nil {
				o.conn.Close()
			}
		}
	})

	var accepted, shed int
	var hung []string
	for i, o := range outcomes {
		switch {
		case o.code == 0:
			accepted++
		case o.code > 0:
			t.Fatalf("client %d refused with CONNACK %#x, want admitted or closed", i, o.code)
		case errors.Is(o.err, os.ErrDeadlineExceeded):
			hung = append(hung, fmt.Sprintf("fd-%d", i))
		default: // closed at once: EOF or a reset
			shed++
		}
	}
	t.Logf("under a %d-file limit, %d clients at once: %d admitted, %d closed at once, %d left without an answer",
		fileLimit, clients, accepted, shed, len(hung))
	if len(hung) > 0 {
		t.Fatalf("%d clients got neither CONNACK nor a close within 10 s (first: %v)", len(hung), hung[:min(5, len(hung))])
	}
	if accepted > maxConnections || accepted < maxConnections/2 {
		t.Fatalf("%d clients admitted, want at most the derived limit %d (and most of it)", accepted, maxConnections)
	}

	// With the broker at its limit the API still answers, from the view
	// and from the database.
	var admitted string
	for i, o := range outcomes {
		if o.code == 0 {
			admitted = fmt.Sprintf("fd-%d", i)
			break
		}
	}
	p.waitOnline(admitted, true, 10*time.Second)
	for _, path := range []string{"/readyz", "/clients/" + admitted + "/events", "/clients/" + admitted + "/channels", "/nodes"} {
		resp, err := http.Get("http://" + p.HTTPAddr + path)
		if err != nil {
			t.Fatalf("GET %s at the connection limit: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s at the connection limit: %d", path, resp.StatusCode)
		}
	}
	resp, err := http.Get("http://" + p.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), "presenced_mqtt_connections_over_limit_total") ||
		strings.Contains(string(metrics), "presenced_mqtt_connections_over_limit_total 0\n") {
		t.Fatalf("no shed connections counted in /metrics")
	}
}
