package auth

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/presenced/presenced/mqttbroker"
)

func hash(t *testing.T, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func creds(clientID, user, password string) mqttbroker.Credentials {
	return mqttbroker.Credentials{ClientID: clientID, HasUsername: true, Username: user, HasPassword: true, Password: []byte(password)}
}

func TestPasswordFile(t *testing.T) {
	file := "# users\n\nalice:" + hash(t, "wonderland") + "\nbob:" + hash(t, "builder") + "\n"
	p, err := ParsePasswordFile(strings.NewReader(file), "passwd")
	if err != nil {
		t.Fatal(err)
	}
	if p.Users() != 2 {
		t.Fatalf("Users() = %d", p.Users())
	}
	tests := []struct {
		c    mqttbroker.Credentials
		want error
	}{
		{creds("c", "alice", "wonderland"), nil},
		{creds("c", "alice", "wonderland"), nil}, // cached
		{creds("c", "alice", "builder"), mqttbroker.ErrBadCredentials},
		{creds("c", "carol", "x"), mqttbroker.ErrBadCredentials},
		{mqttbroker.Credentials{HasUsername: true, Username: "bob"}, mqttbroker.ErrBadCredentials},
	}
	for _, tt := range tests {
		if err := p.Authenticate(tt.c); !errors.Is(err, tt.want) {
			t.Errorf("Authenticate(%s/%s) = %v, want %v", tt.c.Username, tt.c.Password, err, tt.want)
		}
	}
}

func TestParseErrorsNameFileAndLine(t *testing.T) {
	tests := []struct {
		name  string
		parse func() error
		want  string
	}{
		{"password: no colon", func() error {
			_, err := ParsePasswordFile(strings.NewReader("# c\nalice\n"), "pw.txt")
			return err
		}, `pw.txt:2: want "user:bcrypt-hash"`},
		{"password: not bcrypt", func() error {
			_, err := ParsePasswordFile(strings.NewReader("alice:secret\n"), "pw.txt")
			return err
		}, `pw.txt:1: user "alice": the hash is not a bcrypt hash`},
		{"password: duplicate", func() error {
			h := hash(t, "x")
			_, err := ParsePasswordFile(strings.NewReader("a:"+h+"\na:"+h+"\n"), "pw.txt")
			return err
		}, `pw.txt:2: user "a" listed twice`},
		{"acl: unknown keyword", func() error {
			_, err := ParseACL(strings.NewReader("user a\ntopics read x\n"), "acl.conf")
			return err
		}, `acl.conf:2: unknown keyword "topics"`},
		{"acl: bad access", func() error {
			_, err := ParseACL(strings.NewReader("topic rw x\n"), "acl.conf")
			return err
		}, `acl.conf:1: unknown access "rw"`},
		{"acl: bad filter", func() error {
			_, err := ParseACL(strings.NewReader("\n\ntopic read a/#/b\n"), "acl.conf")
			return err
		}, `acl.conf:3: '#' must be alone`},
		{"keys: no secret", func() error {
			_, err := ParseAccessKeys(strings.NewReader("AK\n"), "keys", nil)
			return err
		}, `keys:1: want "AccessKey:SecretKey"`},
		{"keys: '|' in the access key", func() error {
			_, err := ParseAccessKeys(strings.NewReader("# c\nA|K:secret\n"), "keys", nil)
			return err
		}, `keys:2: access key "A|K" contains '|'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.parse()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "secret\n") {
				t.Fatalf("error echoes a secret: %v", err)
			}
		})
	}
}

func TestACL(t *testing.T) {
	acl, err := ParseACL(strings.NewReader(`
# anonymous
topic read public/#

user alice
topic readwrite sensors/#
topic write alerts/+

client GID_a@@@dev-1
topic write devices/dev-1/#

pattern write devices/%c/status
pattern read users/%u/#
pattern readwrite $SYS/broker/%u
`), "acl.conf")
	if err != nil {
		t.Fatal(err)
	}
	pub := []struct {
		client, user, topic string
		want                bool
	}{
		{"x", "", "public/news", false}, // read only
		{"x", "alice", "sensors/1/temp", true},
		{"x", "alice", "alerts/fire", true},
		{"x", "alice", "alerts/fire/now", false},
		{"x", "bob", "sensors/1/temp", false},
		{"GID_a@@@dev-1", "bob", "devices/dev-1/x", true},
		{"GID_a@@@dev-2", "bob", "devices/dev-1/x", false},
		{"dev-7", "", "devices/dev-7/status", true},
		{"dev-7", "", "devices/dev-8/status", false},
		{"a/b", "", "devices/a/b/status", false}, // '/' in %c is not substituted
		{"x", "carol", "$SYS/broker/carol", true},
	}
	for _, tt := range pub {
		if got := acl.CanPublish(tt.client, tt.user, tt.topic); got != tt.want {
			t.Errorf("CanPublish(%q, %q, %q) = %v, want %v", tt.client, tt.user, tt.topic, got, tt.want)
		}
	}
	sub := []struct {
		client, user, filter string
		want                 bool
	}{
		{"x", "", "public/#", true},
		{"x", "", "public/+/x", true},
		{"x", "", "#", false},
		{"x", "", "+/news", false},
		{"x", "alice", "alerts/+", false}, // write only
		{"x", "alice", "sensors/#", true},
		{"x", "alice", "sensors", true}, // "sensors/#" covers its parent
		{"x", "carol", "users/carol/inbox", true},
		{"x", "carol", "users/dave/inbox", false},
		{"x", "", "users/+/inbox", false}, // %u needs a user name
		{"x", "alice", "$SYS/#", false},
	}
	for _, tt := range sub {
		if got := acl.CanSubscribe(tt.client, tt.user, tt.filter); got != tt.want {
			t.Errorf("CanSubscribe(%q, %q, %q) = %v, want %v", tt.client, tt.user, tt.filter, got, tt.want)
		}
	}
}

// TestBrokerWithAuth runs a broker with a password file, access keys and
// an ACL, and talks to it with paho.
func TestBrokerWithAuth(t *testing.T) {
	pw, err := ParsePasswordFile(strings.NewReader("alice:"+hash(t, "wonderland")+"\n"), "passwd")
	if err != nil {
		t.Fatal(err)
	}
	acl, err := ParseACL(strings.NewReader("user alice\ntopic readwrite a/#\nuser AK1\ntopic read a/#\n"), "acl")
	if err != nil {
		t.Fatal(err)
	}
	srv := mqttbroker.New(mqttbroker.Config{
		Authenticator: Any(pw, NewSignature(map[string]string{"AK1": "SK1"}, nil)),
		Authorizer:    acl,
	}, nil)
	ln := serveOnLoopback(t, srv)
	connect := func(clientID, user, password string) (paho.Client, error) {
		opts := paho.NewClientOptions().AddBroker("tcp://" + ln.Addr().String()).SetClientID(clientID).
			SetUsername(user).SetPassword(password).SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
		c := paho.NewClient(opts)
		tok := c.Connect()
		tok.WaitTimeout(5 * time.Second)
		if tok.Error() == nil {
			t.Cleanup(func() { c.Disconnect(0) })
		}
		return c, tok.Error()
	}
	if _, err := connect("anon", "", ""); err == nil || !strings.Contains(err.Error(), "not Authorized") {
		t.Fatalf("anonymous: %v, want CONNACK 5", err)
	}
	if _, err := connect("c1", "alice", "wrong"); err == nil || !strings.Contains(err.Error(), "bad user name or password") {
		t.Fatalf("wrong password: %v, want CONNACK 4", err)
	}
	alice, err := connect("c1", "alice", "wonderland")
	if err != nil {
		t.Fatal(err)
	}
	device, err := connect("GID_x@@@d1", "AK1", sign([]byte("SK1"), "GID_x"))
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 4)
	tok := device.Subscribe("a/#", 1, func(_ paho.Client, m paho.Message) { got <- m.Topic() })
	tok.WaitTimeout(5 * time.Second)
	if codes := tok.(*paho.SubscribeToken).Result(); codes["a/#"] != 1 {
		t.Fatalf("SUBACK %v", codes)
	}
	tok = device.Subscribe("b/#", 1, nil)
	tok.WaitTimeout(5 * time.Second)
	if codes := tok.(*paho.SubscribeToken).Result(); codes["b/#"] != 0x80 {
		t.Fatalf("refused subscription: SUBACK %v, want 0x80", codes)
	}
	device.Publish("a/denied", 1, false, "x").WaitTimeout(5 * time.Second) // read-only: dropped
	alice.Publish("a/allowed", 1, false, "x").WaitTimeout(5 * time.Second)
	select {
	case topic := <-got:
		if topic != "a/allowed" {
			t.Fatalf("got %s", topic)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
	}
	st := srv.Stats()
	if st.DeniedPublishes != 1 || st.DeniedSubscribes != 1 || st.Refused != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// serveOnLoopback serves srv on a fresh loopback port until the test ends.
func serveOnLoopback(t *testing.T, srv *mqttbroker.Server) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return ln
}
