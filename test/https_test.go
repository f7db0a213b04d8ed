package test

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// httpsProc is a presenced whose HTTP listener serves HTTPS.
type httpsProc struct {
	*proc
	client *http.Client
}

// startHTTPS starts p with --http-tls-cert/--http-tls-key and waits until
// /readyz answers 200 over HTTPS, trusting roots.
func startHTTPS(t *testing.T, p *proc, certFile, keyFile string, roots *x509.CertPool) *httpsProc {
	t.Helper()
	h := &httpsProc{proc: p, client: httpsClient(roots)}
	args := []string{cmp.Or(p.Command, "serve"), "--http-addr", p.HTTPAddr, "--data-dir", p.DataDir, "--log-level", "debug",
		"--http-tls-cert", certFile, "--http-tls-key", keyFile, "--tls-reload-every", "0"}
	if p.MQTTAddr != "" {
		args = append(args, "--mqtt-addr", p.MQTTAddr, "--node", p.Node)
	}
	if p.DBURL != "" {
		args = append(args, "--database-url", p.DBURL)
	}
	args = append(args, p.Args...)
	p.logs = &syncBuffer{}
	p.cmd = exec.Command(presencedBin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	p.cmd.Env = []string{"PATH=/usr/bin:/bin"}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func() {
		p.exitErr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.kill)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if code, _, err := h.get("/readyz"); err == nil && code == http.StatusOK {
			return h
		}
		select {
		case <-p.done:
			t.Fatalf("presenced exited before it was ready: %v\n%s", p.exitErr, p.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("presenced not ready over HTTPS after 60s\n%s", p.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func httpsClient(roots *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots}, DisableKeepAlives: true,
	}}
}

func (h *httpsProc) get(path string) (int, []byte, error) {
	resp, err := h.client.Get("https://" + h.HTTPAddr + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// waitHTTPSMetric waits until the metric line name has value want.
func (h *httpsProc) waitHTTPSMetric(t *testing.T, name, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, body, err := h.get("/metrics"); err == nil {
			for _, line := range strings.Split(string(body), "\n") {
				if line == name+" "+want {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("metric %s never became %s\n%s", name, want, h.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The API is served over HTTPS (serve and api alike), plain HTTP on the
// port gets nothing useful, "presenced health" checks it with --cacert or
// --insecure, and a new certificate is taken on SIGHUP.
func TestHTTPSForTheAPI(t *testing.T) {
	dbURL := pgtest.URL(t)
	for _, command := range []string{"serve", "api"} {
		t.Run(command, func(t *testing.T) {
			ca, newCA := newPKI(t, "https"), newPKI(t, "https-new")
			certFile, keyFile := ca.issue("api", true)
			p := &proc{t: t, Command: command, HTTPAddr: freeAddr(t), DBURL: dbURL, DataDir: t.TempDir()}
			if command == "serve" {
				p.MQTTAddr, p.Node = freeAddr(t), "node-"+strings.ReplaceAll(t.Name(), "/", "-")
			}
			h := startHTTPS(t, p, certFile, keyFile, ca.pool)

			if code, body, err := h.get("/clients/GID_x@@@nobody/online"); err != nil || code != http.StatusOK || !strings.Contains(string(body), `"online":false`) {
				t.Fatalf("GET online over HTTPS: %v %d %s", err, code, body)
			}
			if resp, err := http.Get("http://" + p.HTTPAddr + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					t.Fatal("plain HTTP on the HTTPS listener answered 200")
				}
			}

			url := "https://" + p.HTTPAddr + "/readyz"
			if out, err := exec.Command(presencedBin, "health", "--url", url, "--cacert", ca.CAFile).CombinedOutput(); err != nil {
				t.Fatalf("health --cacert: %v %s", err, out)
			}
			if out, err := exec.Command(presencedBin, "health", "--url", url, "--insecure").CombinedOutput(); err != nil {
				t.Fatalf("health --insecure: %v %s", err, out)
			}
			out, err := exec.Command(presencedBin, "health", "--url", url).CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "not healthy") {
				t.Fatalf("health without the CA: %v %s; want exit 1, not healthy", err, out)
			}

			// Reload on SIGHUP: new connections get the new certificate.
			newCA.issueTo("api", true, certFile, keyFile)
			both := ca.pool.Clone()
			both.AddCert(newCA.cert)
			h.client = httpsClient(both)
			if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			h.waitHTTPSMetric(t, `presenced_tls_certificate_reloads_total{listener="http"}`, "1")
			h.client = httpsClient(newCA.pool)
			if code, _, err := h.get("/readyz"); err != nil || code != http.StatusOK {
				t.Fatalf("readyz with the new certificate: %v %d", err, code)
			}
			p.stop()
		})
	}
}
