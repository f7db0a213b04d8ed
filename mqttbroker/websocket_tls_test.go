package mqttbroker

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"
)

// wssFixture is a broker serving MQTT over secure WebSocket: a
// WebSocketListener over a TLS listener with a server certificate of a
// fresh CA, client certificates of another required.
type wssFixture struct {
	*testServer
	wl                 *WebSocketListener
	serverCA, clientCA *testCA
}

func startWSSServer(t *testing.T, cfg Config) *wssFixture {
	t.Helper()
	f := &wssFixture{serverCA: newTestCA(t, "server CA"), clientCA: newTestCA(t, "client CA")}
	tlsConfig := &tls.Config{
		Certificates: []tls.Certificate{f.serverCA.issue(t, "broker", true)},
		MinVersion:   tls.VersionTLS12,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    f.clientCA.pool,
	}
	cfg.Node, cfg.Epoch, cfg.Logger = "test-node", "test-epoch", discardLogger()
	rec := newRecorder()
	srv := New(cfg, rec.sink)
	inner, err := Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.wl = NewWebSocketListener(tls.NewListener(inner, tlsConfig), WebSocketConfig{Log: discardLogger()})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(f.wl) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		f.wl.Close()
	})
	f.testServer = &testServer{Server: srv, rec: rec, addr: inner.Addr().String()}
	return f
}

// dialWSS opens a TLS connection with the client certificate of cn issued
// by ca and upgrades it to a WebSocket; the error is the TLS handshake's.
func (f *wssFixture) dialWSS(t *testing.T, ca *testCA, cn string, adjust func(*tls.Config)) (*rawClient, *wsClient, error) {
	t.Helper()
	cfg := &tls.Config{RootCAs: f.serverCA.pool, ServerName: "127.0.0.1",
		Certificates: []tls.Certificate{ca.issue(t, cn, false)}}
	if adjust != nil {
		adjust(cfg)
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	nc, err := d.Dial("tcp", f.addr)
	if err != nil {
		return nil, nil, err
	}
	t.Cleanup(func() { nc.Close() })
	tc := nc.(*tls.Conn)
	// In TLS 1.3 the client finishes its handshake before the server has
	// checked its certificate: a refusal shows on the first read.
	resp, ws := wsUpgrade(t, tc, f.addr, "/mqtt", "mqtt")
	if ws == nil {
		t.Fatalf("wss handshake: %s", resp.Status)
	}
	return &rawClient{t: t, nc: ws}, ws, nil
}

// MQTT over secure WebSocket: the TLS identity options apply as on MQTT
// over TLS (the certificate's CN is the user name), the connect event
// records the client's address and the TLS version and subject, and an
// idle connection parks in the idle poller — and wakes for its next
// packet, also when it sits in one TLS record behind a large one.
func TestSecureWebSocketRoundTripIdentityAndParking(t *testing.T) {
	users := make(chan string, 16)
	f := startWSSServer(t, Config{TLSIdentity: TLSIdentityCN, TLSRequireClientIDMatch: true,
		Authenticator: refusingAuthenticator{}, Authorizer: identityAuthorizer{users: users}})
	sub, subWS, err := f.dialWSS(t, f.clientCA, "dev-1", nil)
	if err != nil {
		t.Fatalf("wss dial: %v", err)
	}
	if ack := sub.connect(&connectPacket{ClientID: "dev-1", CleanSession: true, Keepalive: 60}); ack.ReturnCode != 0 {
		t.Fatalf("CONNACK %d", ack.ReturnCode)
	}
	sub.subscribe(1, 0, "dev-1/#")
	sub.publish(&publishPacket{Topic: "dev-1/x", Payload: []byte("over wss")})
	if got := sub.receive(false); string(got.Payload) != "over wss" {
		t.Fatalf("received %q", got.Payload)
	}
	if u := <-users; u != "dev-1" {
		t.Fatalf("authorizer asked about user %q, want the CN dev-1", u)
	}
	e := connectEvent(t, f.rec, "dev-1")
	if e.ClientIP != subWS.LocalAddr().String() || e.Username != "dev-1" ||
		e.TLSVersion != "TLS 1.3" || e.TLSClientSubject != "CN=dev-1,O=presenced test" {
		t.Fatalf("connect event %+v, want clientIp %s, user dev-1, TLS 1.3 and the subject", e, subWS.LocalAddr())
	}

	waitParked(t, f.Server, "dev-1")
	sub.send(&emptyPacket{Type: typePingreq})
	sub.expect(typePingresp)
	waitParked(t, f.Server, "dev-1")
	big := encodePacket(&publishPacket{Topic: "dev-1/x", Payload: make([]byte, 3*readBufferSize)})
	ping := encodePacket(&emptyPacket{Type: typePingreq})
	// Both frames in one write, so in one TLS record (the client's record
	// size is not ramped up) that the broker reads in several pieces.
	if _, err := subWS.Conn.Write(append(frame(true, wsBinary, big), frame(true, wsBinary, ping)...)); err != nil {
		t.Fatal(err)
	}
	// The PINGRESP is what shows the PINGREQ was not stranded; the
	// PUBLISH may be delivered before or after it.
	sawPing, sawPublish := false, false
	for !sawPing || !sawPublish {
		p, err := sub.next(5 * time.Second)
		if err != nil {
			t.Fatalf("after PUBLISH and PINGREQ in one record (PINGRESP %v, PUBLISH %v): %v", sawPing, sawPublish, err)
		}
		switch p := p.(type) {
		case *publishPacket:
			sawPublish = len(p.Payload) == 3*readBufferSize
		default:
			sawPing = sawPing || p.kind() == typePingresp
		}
	}

	// A client id other than the CN is refused [TLSRequireClientIDMatch].
	other, _, err := f.dialWSS(t, f.clientCA, "dev-2", nil)
	if err != nil {
		t.Fatalf("wss dial: %v", err)
	}
	if ack := other.connect(&connectPacket{ClientID: "dev-1-not", CleanSession: true}); ack.ReturnCode != connRefusedIdentifier {
		t.Fatalf("CONNACK %d, want %d", ack.ReturnCode, connRefusedIdentifier)
	}
	if st := f.wl.Stats(); st.Accepted != 2 {
		t.Fatalf("stats %+v, want 2 accepted", st)
	}
}

// A client certificate of another CA fails the TLS handshake: no
// WebSocket, no MQTT session, no event; the listener counts it failed.
func TestSecureWebSocketRefusesForeignCertificate(t *testing.T) {
	f := startWSSServer(t, Config{AllowAnonymous: true})
	foreign := newTestCA(t, "foreign CA")
	cfg := &tls.Config{RootCAs: f.serverCA.pool, ServerName: "127.0.0.1",
		Certificates: []tls.Certificate{foreign.issue(t, "intruder", false)}}
	nc, err := tls.Dial("tcp", f.addr, cfg)
	if err == nil {
		// TLS 1.3: the server's refusal comes as an alert on the first read.
		t.Cleanup(func() { nc.Close() })
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		nc.Write([]byte("GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n"))
		var b [1]byte
		if _, err = nc.Read(b[:]); err == nil {
			t.Fatal("a client certificate of another CA got an answer")
		}
	}
	waitUntil(t, "the refused handshake to be counted", func() bool { return f.wl.Stats().Failed == 1 })
	if st := f.wl.Stats(); st.Accepted != 0 {
		t.Fatalf("stats %+v, want none accepted", st)
	}
	if events := f.rec.snapshot(); len(events) != 0 {
		t.Fatalf("events %v, want none", events)
	}
}
