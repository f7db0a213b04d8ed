package test

import (
	"fmt"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// pahoConnect connects a paho client with the given client id.
func pahoConnect(t *testing.T, addr, clientID string, keepalive time.Duration) mqtt.Client {
	t.Helper()
	opts := mqtt.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID(clientID).
		SetKeepAlive(keepalive).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(5 * time.Second)
	client := mqtt.NewClient(opts)
	tok := client.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("paho connect %q: %v", clientID, tok.Error())
	}
	t.Cleanup(func() { client.Disconnect(0) })
	return client
}

func TestConnectMakesClientOnline(t *testing.T) {
	p := startServe(t, pgtest.URL(t))
	if p.status("GID_e2e@@@dev-1").Online {
		t.Fatal("unknown client reported online")
	}
	pahoConnect(t, p.MQTTAddr, "GID_e2e@@@dev-1", 30*time.Second)
	p.waitOnline("GID_e2e@@@dev-1", true, 5*time.Second)
	st := p.status("GID_e2e@@@dev-1")
	if st.OpenChannels != 1 || st.Since == nil {
		t.Fatalf("status %+v, want one open channel and a since time", st)
	}
}

func TestAbruptCloseMakesClientOffline(t *testing.T) {
	p := startServe(t, pgtest.URL(t))
	conn, code := rawConnect(t, p.MQTTAddr, "abrupt-1", 60)
	if code != 0 {
		t.Fatalf("CONNACK code %d", code)
	}
	p.waitOnline("abrupt-1", true, 5*time.Second)
	abortClose(conn)
	p.waitOnline("abrupt-1", false, 5*time.Second)
	events := waitStoredEvents(t, p.DBURL, "abrupt-1", 2)
	if events[0].EventType != "connect" || events[1].EventType != "tcpclean" || events[1].Reason == "" {
		t.Fatalf("stored %+v, want connect then tcpclean with a reason", events)
	}
	if events[1].Reason != "client_closed" { // an RST is the client's own close
		t.Fatalf("tcpclean reason %q, want client_closed", events[1].Reason)
	}
}

func TestDisconnectThenCloseRecordsBothEvents(t *testing.T) {
	p := startServe(t, pgtest.URL(t))
	conn, _ := rawConnect(t, p.MQTTAddr, "polite-1", 60)
	if _, err := conn.Write(disconnectPacket); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, conn, 5*time.Second)
	events := waitStoredEvents(t, p.DBURL, "polite-1", 3)
	got := fmt.Sprint(events[0].EventType, events[1].EventType, events[2].EventType, events[2].Reason)
	if got != fmt.Sprint("connect", "disconnect", "tcpclean", "client_disconnect") {
		t.Fatalf("stored %+v, want connect, disconnect, tcpclean(client_disconnect)", events)
	}
	p.waitOnline("polite-1", false, 5*time.Second)
}

func TestKeepaliveExpiryMakesClientOffline(t *testing.T) {
	p := startServe(t, pgtest.URL(t))
	conn, _ := rawConnect(t, p.MQTTAddr, "silent-1", 1) // 1 s keepalive: closed after 1.5 s of silence
	p.waitOnline("silent-1", true, 5*time.Second)
	start := time.Now()
	waitClosed(t, conn, 5*time.Second)
	if waited := time.Since(start); waited < time.Second {
		t.Fatalf("closed after %v of silence; [MQTT-3.1.2-24] allows 1.5 × keepalive", waited)
	}
	p.waitOnline("silent-1", false, 5*time.Second)
	events := waitStoredEvents(t, p.DBURL, "silent-1", 2)
	if events[1].Reason != "keepalive_timeout" {
		t.Fatalf("stored %+v, want tcpclean(keepalive_timeout)", events)
	}
}

func TestPingKeepsClientOnline(t *testing.T) {
	p := startServe(t, pgtest.URL(t))
	conn, _ := rawConnect(t, p.MQTTAddr, "pinger-1", 1)
	for range 4 { // 2 s, longer than 1.5 × keepalive
		time.Sleep(500 * time.Millisecond)
		if _, err := conn.Write(pingreqPacket); err != nil {
			t.Fatalf("PINGREQ: %v", err)
		}
		var pingresp [2]byte
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Read(pingresp[:]); err != nil || pingresp != [2]byte{0xD0, 0x00} {
			t.Fatalf("PINGRESP: % x %v", pingresp, err)
		}
	}
	if !p.status("pinger-1").Online {
		t.Fatal("client that pings went offline")
	}
}

func TestTakeoverKeepsClientOnline(t *testing.T) {
	p := startServe(t, pgtest.URL(t))
	old, _ := rawConnect(t, p.MQTTAddr, "twin-1", 60)
	p.waitOnline("twin-1", true, 5*time.Second)
	_, code := rawConnect(t, p.MQTTAddr, "twin-1", 60)
	if code != 0 {
		t.Fatalf("second CONNECT: CONNACK code %d", code)
	}
	waitClosed(t, old, 5*time.Second) // [MQTT-3.1.4-2]: the server disconnects the existing client
	events := waitStoredEvents(t, p.DBURL, "twin-1", 3)
	var takeovers, connects int
	for _, e := range events {
		switch {
		case e.EventType == "tcpclean" && e.Reason == "takeover" && e.ChannelID == events[0].ChannelID:
			takeovers++
		case e.EventType == "connect":
			connects++
		}
	}
	if takeovers != 1 || connects != 2 {
		t.Fatalf("stored %+v, want two connects and the first channel closed by takeover", events)
	}
	// The API follows the store's change feed, so its view may still hold the
	// old channel open for a moment; it must converge to one open channel and
	// never answer offline on the way.
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := p.status("twin-1")
		if !st.Online {
			t.Fatalf("after takeover: %+v, a takeover must never answer offline", st)
		}
		if st.OpenChannels == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after takeover: %+v, want one open channel within 5s", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestClientIDWithWildcardIsRejected(t *testing.T) {
	p := startServe(t, pgtest.URL(t))
	conn, code := rawConnect(t, p.MQTTAddr, "bad+id", 60)
	if code != 0x02 {
		t.Fatalf("CONNACK code 0x%02x, want 0x02 identifier rejected", code)
	}
	waitClosed(t, conn, 5*time.Second)
	if events := storedEvents(t, p.DBURL, "bad+id"); len(events) != 0 {
		t.Fatalf("a rejected CONNECT stored events: %+v", events)
	}
}

func TestRestartKeepsHistoryAndClosesChannelsOnShutdown(t *testing.T) {
	p := startServe(t, pgtest.URL(t))
	conn, _ := rawConnect(t, p.MQTTAddr, "durable-1", 60)
	p.waitOnline("durable-1", true, 5*time.Second)
	p.stop()
	waitClosed(t, conn, 5*time.Second)
	// The tcpclean of the shutdown was stored before the process exited.
	events := storedEvents(t, p.DBURL, "durable-1")
	if len(events) != 2 || events[1].EventType != "tcpclean" || events[1].Reason != "server_shutdown" {
		t.Fatalf("after graceful stop stored %+v, want connect and tcpclean(server_shutdown)", events)
	}
	p.start()
	if p.status("durable-1").Online {
		t.Fatal("client online after restart although its channel was closed")
	}
	conn2, _ := rawConnect(t, p.MQTTAddr, "durable-1", 60)
	defer conn2.Close()
	p.waitOnline("durable-1", true, 5*time.Second)
	if events := storedEvents(t, p.DBURL, "durable-1"); len(events) != 3 {
		t.Fatalf("history after restart: %+v, want the 2 old events and a new connect", events)
	}
}

func TestAPIRejectsInvalidClientID(t *testing.T) {
	p := startServe(t, pgtest.URL(t))
	var problem struct {
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	if code := p.getJSON("/clients/a%2Bb%23/online", &problem); code != 400 || problem.Status != 400 || problem.Detail == "" {
		t.Fatalf("GET with wildcard id: %d %+v, want 400 problem", code, problem)
	}
}
