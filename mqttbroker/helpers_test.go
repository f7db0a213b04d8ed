package mqttbroker

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

// recorder is an EventSink that keeps every event and can be told to fail
// connect events.
type recorder struct {
	mu          sync.Mutex
	events      []presence.Event
	failConnect bool
	changed     chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 1)} }

func (r *recorder) sink(e presence.Event) error {
	if err := e.Validate(); err != nil {
		panic("broker emitted an invalid event: " + err.Error())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.Type == presence.EventConnect && r.failConnect {
		return errors.New("backlog full")
	}
	r.events = append(r.events, e)
	select {
	case r.changed <- struct{}{}:
	default:
	}
	return nil
}

func (r *recorder) snapshot() []presence.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// forClient returns the events of one client id.
func (r *recorder) forClient(clientID string) []presence.Event {
	var out []presence.Event
	for _, e := range r.snapshot() {
		if e.ClientID == clientID {
			out = append(out, e)
		}
	}
	return out
}

// waitFor waits until cond holds for the recorded events.
func (r *recorder) waitFor(t *testing.T, what string, cond func([]presence.Event) bool) []presence.Event {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		events := r.snapshot()
		if cond(events) {
			return events
		}
		select {
		case <-r.changed:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s; events: %v", what, events)
		}
	}
}

// waitTCPClean waits for the tcpclean of clientID and returns it.
func (r *recorder) waitTCPClean(t *testing.T, clientID string) presence.Event {
	t.Helper()
	var found presence.Event
	r.waitFor(t, "tcpclean of "+clientID, func(events []presence.Event) bool {
		for _, e := range events {
			if e.ClientID == clientID && e.Type == presence.EventTCPClean {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

// types lists the event types of events.
func types(events []presence.Event) []presence.EventType {
	out := make([]presence.EventType, len(events))
	for i, e := range events {
		out[i] = e.Type
	}
	return out
}

// testServer is a broker on 127.0.0.1:0 with a recording sink.
type testServer struct {
	*Server
	rec  *recorder
	addr string
}

func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	rec := newRecorder()
	if cfg.Node == "" {
		cfg.Node = "test-node"
	}
	if cfg.Epoch == "" {
		cfg.Epoch = "test-epoch"
	}
	if cfg.Logger == nil {
		cfg.Logger = discardLogger()
	}
	srv := New(cfg, rec.sink)
	ln, err := Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return &testServer{Server: srv, rec: rec, addr: ln.Addr().String()}
}

// rawClient speaks MQTT byte by byte over a plain socket.
type rawClient struct {
	t      *testing.T
	nc     net.Conn
	reader packetReader
	v5     bool // decode what the server sends as MQTT 5.0
}

func dial(t *testing.T, addr string) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawClient{t: t, nc: nc}
}

// write sends raw bytes.
func (c *rawClient) write(b []byte) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *rawClient) send(p packet) { c.t.Helper(); c.write(encodePacket(p)) }

// next reads one packet, or returns the read error.
func (c *rawClient) next(timeout time.Duration) (packet, error) {
	c.nc.SetReadDeadline(time.Now().Add(timeout))
	first, body, err := c.reader.readPacket(c.nc, 1<<20)
	if err != nil {
		return nil, err
	}
	if c.v5 {
		return decodePacketV5(first, body)
	}
	return decodePacket(first, body)
}

// expect reads one packet and fails the test unless it is of type t.
func (c *rawClient) expect(t packetType) packet {
	c.t.Helper()
	p, err := c.next(5 * time.Second)
	if err != nil {
		c.t.Fatalf("reading %s: %v", t, err)
	}
	if p.kind() != t {
		c.t.Fatalf("got %s (%+v), want %s", p.kind(), p, t)
	}
	return p
}

// expectClosed fails the test unless the server closes the connection
// without sending anything more.
func (c *rawClient) expectClosed() {
	c.t.Helper()
	p, err := c.next(5 * time.Second)
	if err == nil {
		c.t.Fatalf("got %s (%+v), want the connection closed", p.kind(), p)
	}
	if !errors.Is(err, io.EOF) && !isConnReset(err) {
		c.t.Fatalf("want the connection closed, got %v", err)
	}
}

// barrierTopic holds the retained message that (*rawClient).barrier
// hands out; see retainBarrier.
const barrierTopic = "barrier"

// retainBarrier stores the retained message on barrierTopic. c must not be
// subscribed to it, or a live copy would be taken for the barrier.
func (c *rawClient) retainBarrier() {
	c.t.Helper()
	c.publish(&publishPacket{Topic: barrierTopic, Payload: []byte("barrier"), QoS: 1, Retain: true})
}

// barrier proves that nothing already on its way to c comes after it: c
// subscribes (again) to barrierTopic at qos, and the next packets must be
// SUBACK and the retained message [MQTT-3.8.4-3]. That is the broker's
// order, not a timing. It handles c's packets one after the other and
// writes its replies (SUBACK) at once, so whatever c's earlier packets
// made it write or deliver comes first. It then delivers the retained
// message to c's session like any message, behind whatever was delivered
// to c before: on the connection's queue, and at qos 1 also in the session
// queue. At qos 0 it overtakes QoS 1 and 2 messages held in the session
// queue by the in-flight window, so a test can show the window holds them.
// A message is delivered once its publisher has its PUBACK or PUBREC
// (handlePublish routes first), a will once its tcpclean is emitted.
func (c *rawClient) barrier(qos byte) {
	c.t.Helper()
	const id = 0xba77 // apart from the ids the tests use
	c.subscribe(id, qos, barrierTopic)
	p := c.expect(typePublish).(*publishPacket)
	if p.Topic != barrierTopic || !p.Retain {
		c.t.Fatalf("got %+v before the barrier", p)
	}
	if p.QoS == 1 {
		c.send(&ackPacket{Type: typePuback, ID: p.ID})
	}
}

func isConnReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

// connect sends CONNECT and returns the CONNACK.
func (c *rawClient) connect(p *connectPacket) *connackPacket {
	c.t.Helper()
	if p.ProtocolName == "" {
		p.ProtocolName, p.ProtocolLevel = "MQTT", 4
	}
	c.v5 = p.ProtocolLevel == 5
	c.send(p)
	return c.expect(typeConnack).(*connackPacket)
}

// connectOK connects clientID with a clean session and asserts CONNACK 0.
func connectOK(t *testing.T, addr, clientID string) *rawClient {
	t.Helper()
	c := dial(t, addr)
	if ack := c.connect(&connectPacket{ClientID: clientID, CleanSession: true}); ack.ReturnCode != 0 {
		t.Fatalf("CONNACK %d for %s", ack.ReturnCode, clientID)
	}
	return c
}

// subscribe subscribes to filters at qos and returns the SUBACK codes.
func (c *rawClient) subscribe(id uint16, qos byte, filters ...string) []byte {
	c.t.Helper()
	p := &subscribePacket{ID: id, V5: c.v5}
	for _, f := range filters {
		p.Subscriptions = append(p.Subscriptions, subscription{Filter: f, QoS: qos})
	}
	c.send(p)
	ack := c.expect(typeSuback).(*subackPacket)
	if ack.ID != id {
		c.t.Fatalf("SUBACK id %d, want %d", ack.ID, id)
	}
	return ack.ReturnCodes
}

// publish sends a PUBLISH and completes its QoS flow as the sender.
func (c *rawClient) publish(p *publishPacket) {
	c.t.Helper()
	if p.QoS > 0 && p.ID == 0 {
		p.ID = 1
	}
	p.V5 = p.V5 || c.v5
	c.send(p)
	switch p.QoS {
	case 1:
		if ack := c.expect(typePuback).(*ackPacket); ack.ID != p.ID {
			c.t.Fatalf("PUBACK id %d, want %d", ack.ID, p.ID)
		}
	case 2:
		if ack := c.expect(typePubrec).(*ackPacket); ack.ID != p.ID {
			c.t.Fatalf("PUBREC id %d, want %d", ack.ID, p.ID)
		}
		c.send(&ackPacket{Type: typePubrel, ID: p.ID})
		if ack := c.expect(typePubcomp).(*ackPacket); ack.ID != p.ID {
			c.t.Fatalf("PUBCOMP id %d, want %d", ack.ID, p.ID)
		}
	}
}

// receive reads one PUBLISH and, when ack is set, acknowledges it fully.
func (c *rawClient) receive(ack bool) *publishPacket {
	c.t.Helper()
	p := c.expect(typePublish).(*publishPacket)
	if !ack {
		return p
	}
	switch p.QoS {
	case 1:
		c.send(&ackPacket{Type: typePuback, ID: p.ID})
	case 2:
		c.send(&ackPacket{Type: typePubrec, ID: p.ID})
		if rel := c.expect(typePubrel).(*ackPacket); rel.ID != p.ID {
			c.t.Fatalf("PUBREL id %d, want %d", rel.ID, p.ID)
		}
		c.send(&ackPacket{Type: typePubcomp, ID: p.ID})
	}
	return p
}

// connectAs connects with the given packet fields filled in and asserts
// CONNACK 0 with the given session present flag.
func connectAs(t *testing.T, addr string, p connectPacket, wantPresent bool) *rawClient {
	t.Helper()
	c := dial(t, addr)
	ack := c.connect(&p)
	if ack.ReturnCode != 0 || ack.SessionPresent != wantPresent {
		t.Fatalf("CONNACK %+v for %s, want code 0 session present %t", ack, p.ClientID, wantPresent)
	}
	return c
}

// encodePacket returns the wire encoding of p.
func encodePacket(p packet) []byte { return p.appendTo(nil) }
