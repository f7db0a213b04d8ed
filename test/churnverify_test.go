package test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/presenced/presenced/presence"
)

// The verifier of a churn run: after recovery, the store must hold the
// connect of every acknowledged id and the tcpclean of its connection, and
// no churn client may be left online — in the store or in the API's view.

// churnStore is what the store holds for the clients of one churn.
type churnStore struct {
	clients map[string]storedChurnClient
	open    []string // clients with a channel that has connect and no tcpclean
}

type storedChurnClient struct {
	connect, tcpclean bool
	reason            string
}

// likePrefix returns a LIKE pattern matching the ids that start with prefix.
func likePrefix(prefix string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(prefix) + "%"
}

// readChurnStore reads, in two queries, the events and open channels of
// every client whose id starts with prefix.
func readChurnStore(ctx context.Context, dbURL, prefix string) (churnStore, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return churnStore{}, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	pattern := likePrefix(prefix)
	rows, _ := conn.Query(ctx, `
		SELECT client_id,
		       bool_or(event_type = 'connect'),
		       bool_or(event_type = 'tcpclean'),
		       coalesce(min(reason) FILTER (WHERE event_type = 'tcpclean'), '')
		FROM events WHERE client_id LIKE $1 GROUP BY client_id`, pattern)
	s := churnStore{clients: map[string]storedChurnClient{}}
	var (
		id string
		c  storedChurnClient
	)
	if _, err := pgx.ForEachRow(rows, []any{&id, &c.connect, &c.tcpclean, &c.reason}, func() error {
		s.clients[id] = c
		return nil
	}); err != nil {
		return churnStore{}, fmt.Errorf("query events: %w", err)
	}
	rows, _ = conn.Query(ctx, `SELECT client_id FROM channels
		WHERE client_id LIKE $1 AND has_connect AND NOT has_tcpclean`, pattern)
	if s.open, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return churnStore{}, fmt.Errorf("query open channels: %w", err)
	}
	return s, nil
}

// churnReport compares a churn's result with the store.
type churnReport struct {
	acked, foundConnect, foundTcpclean int
	missingConnect, missingTcpclean    []string
	openAcked, openOthers              []string
	reasons                            map[string]int
	refusedWithConnect                 int
}

func compareChurn(res churnResult, s churnStore) churnReport {
	r := churnReport{acked: len(res.Acked), reasons: map[string]int{}}
	for _, id := range res.Acked {
		c := s.clients[id]
		if c.connect {
			r.foundConnect++
		} else {
			r.missingConnect = append(r.missingConnect, id)
		}
		if c.tcpclean {
			r.foundTcpclean++
			r.reasons[c.reason]++
		} else {
			r.missingTcpclean = append(r.missingTcpclean, id)
		}
	}
	for id := range res.Refused {
		if s.clients[id].connect {
			r.refusedWithConnect++
		}
	}
	acked := make(map[string]bool, len(res.Acked))
	for _, id := range res.Acked {
		acked[id] = true
	}
	for _, id := range s.open {
		if acked[id] {
			r.openAcked = append(r.openAcked, id)
		} else {
			r.openOthers = append(r.openOthers, id)
		}
	}
	return r
}

func (r churnReport) ok() bool {
	return len(r.missingConnect) == 0 && len(r.missingTcpclean) == 0 && len(r.openAcked) == 0 && len(r.openOthers) == 0
}

func (r churnReport) String() string {
	return fmt.Sprintf("acknowledged %d, found connect %d, found tcpclean %d, missing connect %d %s, missing tcpclean %d %s, "+
		"still open: acknowledged %d %s, not acknowledged %d %s; tcpclean reasons %v; refused with a stored connect %d",
		r.acked, r.foundConnect, r.foundTcpclean,
		len(r.missingConnect), few(r.missingConnect), len(r.missingTcpclean), few(r.missingTcpclean),
		len(r.openAcked), few(r.openAcked), len(r.openOthers), few(r.openOthers), r.reasons, r.refusedWithConnect)
}

// few lists the first ids of a list, for failure messages.
func few(ids []string) string {
	if len(ids) == 0 {
		return "[]"
	}
	ids = slices.Sorted(slices.Values(ids))
	return fmt.Sprint(ids[:min(len(ids), 5)])
}

// verifyChurn waits (up to timeout) until the store holds the connect and
// a tcpclean of every acknowledged id and no churn client has an open
// channel, then checks the API's view and the history of a few ids. dbURL
// is called at each attempt: the private PostgreSQL's socket may change
// when it restarts. It returns the final report.
func verifyChurn(t *testing.T, p *proc, dbURL func() (string, error), prefix string, res churnResult, timeout time.Duration) churnReport {
	t.Helper()
	if len(res.Acked) == 0 {
		t.Fatalf("churn %s: nothing was acknowledged, there is nothing to verify (%v)", prefix, res)
	}
	deadline := time.Now().Add(timeout)
	var (
		report  churnReport
		lastErr error
		seen    bool
	)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		url, err := dbURL()
		var s churnStore
		if err == nil {
			s, err = readChurnStore(ctx, url, prefix)
		}
		cancel()
		if err == nil {
			report, seen, lastErr = compareChurn(res, s), true, nil
			if report.ok() {
				break
			}
		} else {
			lastErr = err
		}
		if time.Now().After(deadline) {
			if !seen {
				t.Fatalf("churn %s: store unreadable for %v: %v", prefix, timeout, lastErr)
			}
			t.Fatalf("churn %s: events lost after %v: %v (%v)\n%s", prefix, timeout, report, res, tail(p.logs.String(), 60))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("churn %s verified in the store: %v", prefix, report)
	waitNoneOnline(t, p, prefix, time.Until(deadline)+5*time.Second)
	checkHistory(t, p, res.Acked)
	return report
}

// waitNoneOnline waits until the API lists no online client under prefix.
func waitNoneOnline(t *testing.T, p *proc, prefix string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	path := "/clients?state=online&limit=1000&prefix=" + url.QueryEscape(prefix)
	for {
		var page struct {
			Items []presence.Status `json:"items"`
		}
		code, err := getJSONErr(p.HTTPAddr, path, &page)
		if err == nil && code == http.StatusOK && len(page.Items) == 0 {
			return
		}
		if time.Now().After(deadline) {
			ids := make([]string, 0, len(page.Items))
			for _, s := range page.Items {
				ids = append(ids, s.ClientID)
			}
			t.Fatalf("API still lists %d churn clients online after %v (status %d, err %v): %s", len(ids), timeout, code, err, few(ids))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkHistory checks, through GET /clients/{id}/events, that a few
// acknowledged ids have a connect and a tcpclean with a reason.
func checkHistory(t *testing.T, p *proc, acked []string) {
	t.Helper()
	for _, id := range []string{acked[0], acked[len(acked)/2], acked[len(acked)-1]} {
		var page struct {
			Items []presence.StoredEvent `json:"items"`
		}
		code, err := getJSONErr(p.HTTPAddr, "/clients/"+url.PathEscape(id)+"/events?order=asc", &page)
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET events of %s: status %d, %v", id, code, err)
		}
		var connect, tcpclean bool
		for _, e := range page.Items {
			switch e.Type {
			case presence.EventConnect:
				connect = true
			case presence.EventTCPClean:
				tcpclean = e.Reason != ""
			}
		}
		if !connect || !tcpclean {
			t.Fatalf("history of %s has connect %v and tcpclean with a reason %v: %+v", id, connect, tcpclean, page.Items)
		}
	}
}

// tail returns the last n lines of text.
func tail(text string, n int) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
