package mqttbroker

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

// fakeAuth admits alice with the password "right"; banned is not
// authorized; everyone else has bad credentials.
type fakeAuth struct{}

func (fakeAuth) Authenticate(c Credentials) error {
	switch {
	case c.Username == "banned":
		return ErrNotAuthorized
	case c.Username == "alice" && string(c.Password) == "right":
		return nil
	}
	return ErrBadCredentials
}

// lockedBuffer collects log output written from many goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestRefusedConnectsLoggedAndCounted: bad credentials and refused
// authorization are logged at warn with client id, user name and remote
// address — never the password — and counted by reason.
func TestRefusedConnectsLoggedAndCounted(t *testing.T) {
	var logs lockedBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv := startServer(t, Config{Authenticator: fakeAuth{}, Logger: log})
	for _, tt := range []struct {
		clientID, user, password string
		code                     byte
	}{
		{"dev-1", "mallory", "guess-123", connRefusedBadAuth},
		{"dev-2", "banned", "secret-456", connRefusedNotAuth},
		{"dev-3", "", "", connRefusedNotAuth}, // anonymous
		{"dev-4", "alice", "right", connAccepted},
	} {
		c := dial(t, srv.addr)
		ack := c.connect(&connectPacket{ClientID: tt.clientID, CleanSession: true,
			HasUsername: tt.user != "", Username: tt.user, HasPassword: tt.password != "", Password: []byte(tt.password)})
		if ack.ReturnCode != tt.code {
			t.Fatalf("%s: CONNACK %d, want %d", tt.clientID, ack.ReturnCode, tt.code)
		}
	}
	st := srv.Stats()
	if st.RefusedBadAuth != 1 || st.RefusedNotAuthorized != 2 || st.Refused != 3 || st.Connects != 1 {
		t.Fatalf("stats %+v", st)
	}
	type line struct {
		Level, Msg, Client, Username, Remote string
	}
	var got []line
	for l := range strings.Lines(logs.String()) {
		var e line
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if strings.HasPrefix(e.Msg, "mqtt connect refused") {
			if e.Level != "WARN" || e.Remote == "" {
				t.Errorf("log line %q: want WARN with the remote address", l)
			}
			got = append(got, line{Msg: e.Msg, Client: e.Client, Username: e.Username})
		}
	}
	want := []line{
		{Msg: "mqtt connect refused: bad user name or password", Client: "dev-1", Username: "mallory"},
		{Msg: "mqtt connect refused: not authorized", Client: "dev-2", Username: "banned"},
		{Msg: "mqtt connect refused: not authorized", Client: "dev-3"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("refusals logged:\n%+v\nwant\n%+v", got, want)
	}
	for _, secret := range []string{"guess-123", "secret-456", "right"} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("a password is in the log:\n%s", logs.String())
		}
	}
}

// TestOnRefusedReportsRefusals: OnRefused hears every refused CONNECT that
// names a client id, with the code sent and never its password — for an
// MQTT 5 client its v5 Reason Code (0x87 Not authorized).
func TestOnRefusedReportsRefusals(t *testing.T) {
	refused := make(chan presence.RefusedConnect, 4)
	srv := startServer(t, Config{AllowAnonymous: false, OnRefused: func(r presence.RefusedConnect) { refused <- r }})
	c := dial(t, srv.addr)
	c.connect(&connectPacket{ClientID: "anon", CleanSession: true})
	v5 := []byte{0x10, 0, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60, 3, 0x21, 0, 10, 0, 2, 'v', '5'}
	v5[1] = byte(len(v5) - 2)
	c5 := dial(t, srv.addr)
	c5.v5 = true
	c5.write(v5)
	if ack := c5.expect(typeConnack).(*connackPacket); ack.ReturnCode != rcNotAuthorized {
		t.Fatalf("CONNACK %#02x for MQTT 5, want 0x87", ack.ReturnCode)
	}
	for _, want := range []struct {
		client string
		code   int
	}{{"anon", int(connRefusedNotAuth)}, {"v5", int(rcNotAuthorized)}} {
		select {
		case r := <-refused:
			if r.ClientID != want.client || r.ReturnCode != want.code || r.ClientIP == "" || r.Reason == "" || r.Node != "test-node" {
				t.Fatalf("refusal %+v, want %s with code %d", r, want.client, want.code)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no refusal reported for %s", want.client)
		}
	}
}
