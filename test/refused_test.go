package test

import (
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

// TestRefusedConnectsAreRecorded: presenced serve records the CONNECTs it
// refuses, for GET /clients/{id}/refused — an anonymous client where
// anonymous clients are not allowed (0x05), a client of an unknown
// protocol level (0x01) — at most one per client id per 10 s, and the
// online rule ignores them.
func TestRefusedConnectsAreRecorded(t *testing.T) {
	p := startServe(t, pgtest.URL(t), "--allow-anonymous", "false")
	for range 2 {
		if _, code := rawConnect(t, p.MQTTAddr, "GID_locked@@@dev-1", 60); code != 5 {
			t.Fatalf("CONNACK %d for an anonymous client, want 5", code)
		}
	}
	if code := connectAtLevel(t, p.MQTTAddr, "GID_old@@@dev-2", 9); code != 1 {
		t.Fatalf("CONNACK %d for protocol level 9, want 1", code)
	}
	p.waitMetric("presenced_refused_connects_recorded_total", 2, 10*time.Second)
	p.waitMetric(`presenced_refused_connects_dropped_total{why="rate"}`, 1, 10*time.Second)

	var got struct {
		ClientID string
		Items    []presence.RefusedConnect
	}
	code, body := p.send("GET", "/clients/GID_locked@@@dev-1/refused", "")
	if err := json.Unmarshal(body, &got); code != http.StatusOK || err != nil || len(got.Items) != 1 {
		t.Fatalf("refused of dev-1: %d %s", code, body)
	}
	r := got.Items[0]
	if r.ReturnCode != 5 || !strings.Contains(r.Reason, "anonymous") || !strings.HasPrefix(r.ClientIP, "127.0.0.1:") || r.Node == "" || r.RecordedAt.IsZero() {
		t.Fatalf("refusal %+v", r)
	}
	code, body = p.send("GET", "/clients/GID_old@@@dev-2/refused", "")
	if err := json.Unmarshal(body, &got); code != http.StatusOK || err != nil || len(got.Items) != 1 || got.Items[0].ReturnCode != 1 {
		t.Fatalf("refused of dev-2: %d %s", code, body)
	}
	if st := p.status("GID_locked@@@dev-1"); st.Online || st.LastEventAt != nil {
		t.Fatalf("a refused client: %+v, want offline and no event", st)
	}
}

// connectAtLevel sends a CONNECT of the given protocol level and returns
// the CONNACK code.
func connectAtLevel(t *testing.T, addr, clientID string, level byte) byte {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := appendString(nil, "MQTT")
	body = append(body, level, 0x02)
	body = binary.BigEndian.AppendUint16(body, 60)
	body = appendString(body, clientID)
	if _, err := conn.Write(append(appendRemainingLength([]byte{0x10}, len(body)), body...)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var connack [4]byte
	if _, err := io.ReadFull(conn, connack[:]); err != nil {
		t.Fatalf("read CONNACK: %v", err)
	}
	return connack[3]
}
