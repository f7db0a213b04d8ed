package test

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// pahoConnectAs connects a paho client with a user name (no password: the
// loopback serve admits anonymous clients, and keeps the name they give).
func pahoConnectAs(t *testing.T, addr, clientID, username string) mqtt.Client {
	t.Helper()
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(clientID).SetUsername(username).
		SetKeepAlive(30 * time.Second).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second)
	client := mqtt.NewClient(opts)
	if tok := client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("paho connect %q as %q: %v", clientID, username, tok.Error())
	}
	t.Cleanup(func() { client.Disconnect(0) })
	return client
}

// listIDs returns the client ids of one page of GET target.
func listIDs(t *testing.T, p *proc, target string) string {
	t.Helper()
	code, body := p.send("GET", target, "")
	var page struct{ Items []presence.Status }
	decodeInto(t, body, &page)
	if code != 200 {
		t.Fatalf("GET %s: %d %s", target, code, body)
	}
	ids := make([]string, len(page.Items))
	for i, s := range page.Items {
		ids[i] = s.ClientID
	}
	return strings.Join(ids, ",")
}

// TestClientFiltersWithRealClients: /clients filtered by user name, address
// prefix, node and connect time, for paho clients connected to serve.
func TestClientFiltersWithRealClients(t *testing.T) {
	p := startServe(t, pgtest.URL(t))
	before := time.Now().Add(-time.Second)
	pahoConnectAs(t, p.MQTTAddr, "GID_ops@@@a", "alice")
	pahoConnectAs(t, p.MQTTAddr, "GID_ops@@@b", "bob")
	pahoConnect(t, p.MQTTAddr, "GID_ops@@@c", 30*time.Second)
	for _, id := range []string{"GID_ops@@@a", "GID_ops@@@b", "GID_ops@@@c"} {
		p.waitOnline(id, true, 5*time.Second)
	}
	future := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
	for target, want := range map[string]string{
		"/clients?prefix=GID_ops":                                                                         "GID_ops@@@a,GID_ops@@@b,GID_ops@@@c",
		"/clients?prefix=GID_ops&username=alice":                                                          "GID_ops@@@a",
		"/clients?prefix=GID_ops&username=bob&address=127.0.0.1":                                          "GID_ops@@@b",
		"/clients?prefix=GID_ops&address=127.0.0.0/8":                                                     "GID_ops@@@a,GID_ops@@@b,GID_ops@@@c",
		"/clients?prefix=GID_ops&address=10.0.0.0/8":                                                      "",
		"/clients?prefix=GID_ops&address=::1/128":                                                         "",
		"/clients?prefix=GID_ops&node=" + url.QueryEscape(p.Node):                                         "GID_ops@@@a,GID_ops@@@b,GID_ops@@@c",
		"/clients?prefix=GID_ops&node=elsewhere":                                                          "",
		"/clients?prefix=GID_ops&connectedFrom=" + future:                                                 "",
		"/clients?prefix=GID_ops&connectedTo=" + future + "&username=alice":                               "GID_ops@@@a",
		"/clients?prefix=GID_ops&connectedFrom=" + url.QueryEscape(before.UTC().Format(time.RFC3339Nano)): "GID_ops@@@a,GID_ops@@@b,GID_ops@@@c",
	} {
		if got := listIDs(t, p, target); got != want {
			t.Errorf("%s: %q, want %q", target, got, want)
		}
	}
}

// TestIntervalsAndOnlineAtWithRealClients: a paho client's connection shows
// as one online interval, and online?at= answers from history inside and
// outside it.
func TestIntervalsAndOnlineAtWithRealClients(t *testing.T) {
	p := startServe(t, pgtest.URL(t))
	const id = "GID_ops@@@interval"
	from := time.Now().Add(-time.Minute)
	client := pahoConnect(t, p.MQTTAddr, id, 30*time.Second)
	p.waitOnline(id, true, 5*time.Second)
	client.Disconnect(100)
	p.waitOnline(id, false, 5*time.Second)
	ch := waitChannel(t, p.HTTPAddr, id, "the closed channel", func(cs []presence.Channel) *presence.Channel {
		if len(cs) == 1 && !cs[0].Open && cs[0].ConnectAt != nil && cs[0].TCPCleanAt != nil {
			return &cs[0]
		}
		return nil
	})
	connectAt, closedAt := ch.ConnectAt.UnixMilli(), ch.TCPCleanAt.UnixMilli()

	var spans struct {
		Intervals []struct {
			From, To time.Time
			Ongoing  bool
		}
		OnlineMs int64
		Uptime   float64
	}
	to := time.Now().Add(time.Second)
	code, body := p.send("GET", "/clients/"+url.PathEscape(id)+"/presence?from="+
		strconv.FormatInt(from.UnixMilli(), 10)+"&to="+strconv.FormatInt(to.UnixMilli(), 10), "")
	decodeInto(t, body, &spans)
	if code != 200 || len(spans.Intervals) != 1 {
		t.Fatalf("presence: %d %s", code, body)
	}
	iv := spans.Intervals[0]
	if iv.From.UnixMilli() != connectAt || iv.To.UnixMilli() != closedAt || iv.Ongoing {
		t.Fatalf("interval %+v, want [%d, %d) closed", iv, connectAt, closedAt)
	}
	if spans.OnlineMs != closedAt-connectAt || spans.Uptime <= 0 || spans.Uptime >= 1 {
		t.Fatalf("onlineMs %d uptime %v, want %d and a fraction", spans.OnlineMs, spans.Uptime, closedAt-connectAt)
	}

	onlineAt := func(ms int64) bool {
		t.Helper()
		var at struct{ Online bool }
		code, body := p.send("GET", "/clients/"+url.PathEscape(id)+"/online?at="+strconv.FormatInt(ms, 10), "")
		decodeInto(t, body, &at)
		if code != 200 {
			t.Fatalf("online?at=%d: %d %s", ms, code, body)
		}
		return at.Online
	}
	if !onlineAt(connectAt) || (closedAt-connectAt > 1 && !onlineAt(closedAt-1)) {
		t.Errorf("not online at %d or %d, inside its connection", connectAt, closedAt-1)
	}
	if onlineAt(connectAt-1) || onlineAt(closedAt) {
		t.Errorf("online at %d or %d, outside its connection [%d, %d)", connectAt-1, closedAt, connectAt, closedAt)
	}
	code, body = p.send("GET", "/clients/"+url.PathEscape(id)+"/online?at=tomorrow", "")
	if code != 400 || !strings.Contains(string(body), "at") {
		t.Errorf("online?at=tomorrow: %d %s", code, body)
	}
}
