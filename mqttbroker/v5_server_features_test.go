package mqttbroker

import (
	"fmt"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

// TestV5RequestProblemInformation: an acknowledgement that refuses
// something carries a Reason String [MQTT-3.4.2.2.2], unless CONNECT had
// Request Problem Information 0: then no packet but PUBLISH, CONNACK and
// DISCONNECT carries a Reason String or User Property [MQTT-3.1.2-29] —
// while a PUBLISH keeps the publisher's User Properties.
func TestV5RequestProblemInformation(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true, MaxTopicLength: 16})
	refusals := func(c *rawClient) (puback, suback, pubcomp *properties) {
		t.Helper()
		c.send(&publishPacket{V5: true, Topic: "$SYS/presence/x", QoS: 1, ID: 1, Payload: []byte("forged")})
		ack := c.expect(typePuback).(*ackPacket)
		if ack.Reason != rcNotAuthorized {
			t.Fatalf("PUBACK %+v, want 0x87", ack)
		}
		c.send(&subscribePacket{ID: 2, V5: true, Subscriptions: []subscription{{Filter: "far/too/long/a/filter"}}})
		sub := c.expect(typeSuback).(*subackPacket)
		if len(sub.ReturnCodes) != 1 || sub.ReturnCodes[0] != rcTopicFilterInvalid {
			t.Fatalf("SUBACK %+v, want 0x8F", sub)
		}
		c.send(&ackPacket{Type: typePubrel, ID: 3})
		comp := c.expect(typePubcomp).(*ackPacket)
		if comp.Reason != rcPacketIDNotFound {
			t.Fatalf("PUBCOMP %+v, want 0x92", comp)
		}
		return ack.Props, sub.Props, comp.Props
	}

	talkative := connectV5OK(t, srv.addr, "talkative")
	for i, p := range func() []*properties { a, b, c := refusals(talkative); return []*properties{a, b, c} }() {
		if !p.has(propReasonString) || p.ReasonString == "" {
			t.Fatalf("refusal %d: properties %+v, want a Reason String", i, p)
		}
	}

	quiet, ack := connectV5(t, srv.addr, connectPacket{ClientID: "quiet", CleanSession: true,
		Props: props(func(p *properties) { p.RequestProblemInfo = 0 }, propRequestProblemInfo)})
	if ack.ReturnCode != rcSuccess {
		t.Fatalf("CONNACK %+v", ack)
	}
	for i, p := range func() []*properties { a, b, c := refusals(quiet); return []*properties{a, b, c} }() {
		if p.has(propReasonString) || p.has(propUserProperty) {
			t.Fatalf("refusal %d: properties %+v, want no Reason String nor User Property", i, p)
		}
	}
	quiet.subscribe(4, 0, "up/#")
	user := props(func(p *properties) { p.User = []userProperty{{"k", "v"}} }, propUserProperty)
	talkative.publish(&publishPacket{Topic: "up/a", QoS: 1, ID: 5, Payload: []byte("x"), Props: user})
	if got := quiet.receive(true); len(got.Props.User) != 1 || got.Props.User[0] != (userProperty{"k", "v"}) {
		t.Fatalf("PUBLISH properties %+v, want the publisher's User Property", got.Props)
	}
}

// TestV5RequestResponseInformation: Request Response Information 1 is
// accepted, and the server returns no Response Information (which it may
// [MQTT-3.1.2-28], [MQTT-3.2.2.3.15]); 0 likewise.
func TestV5RequestResponseInformation(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true})
	for _, want := range []byte{1, 0} {
		c, ack := connectV5(t, srv.addr, connectPacket{ClientID: fmt.Sprintf("rri-%d", want), CleanSession: true,
			Props: props(func(p *properties) { p.RequestResponseInfo = want }, propRequestResponseInfo)})
		if ack.ReturnCode != rcSuccess || ack.Props.has(propResponseInfo) {
			t.Fatalf("Request Response Information %d: CONNACK %+v %+v, want success without Response Information", want, ack, ack.Props)
		}
		c.send(&emptyPacket{Type: typePingreq})
		c.expect(typePingresp)
	}
}

// TestV5ServerKeepAlive: with a maximum keepalive, a v5 client asking for
// more, or for none, is told Server Keep Alive in CONNACK [MQTT-3.2.2-21]
// and timed out by it (DISCONNECT 0x8D after 1.5 × it); one within the
// maximum keeps its own and gets no Server Keep Alive; a 3.1.1 client is
// not limited.
func TestV5ServerKeepAlive(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true, MaxKeepalive: time.Second})
	old := dial(t, srv.addr)
	if ack := old.connect(&connectPacket{ClientID: "v3-long", CleanSession: true, Keepalive: 60}); ack.ReturnCode != 0 {
		t.Fatalf("3.1.1 CONNACK %+v", ack)
	}
	within, ack := connectV5(t, srv.addr, connectPacket{ClientID: "within", CleanSession: true, Keepalive: 1})
	if ack.ReturnCode != rcSuccess || ack.Props.has(propServerKeepAlive) {
		t.Fatalf("keepalive within the maximum: CONNACK %+v %+v, want no Server Keep Alive", ack, ack.Props)
	}
	within.send(&disconnectPacket{})
	for _, asked := range []uint16{60, 0} {
		id := fmt.Sprintf("asked-%d", asked)
		c, ack := connectV5(t, srv.addr, connectPacket{ClientID: id, CleanSession: true, Keepalive: asked})
		if ack.ReturnCode != rcSuccess || !ack.Props.has(propServerKeepAlive) || ack.Props.ServerKeepAlive != 1 {
			t.Fatalf("keepalive %d: CONNACK %+v %+v, want Server Keep Alive 1", asked, ack, ack.Props)
		}
		// [MQTT-3.2.2-22] the client's own value no longer counts: silent, it
		// is closed after 1.5 s, not 90 s or never.
		p, err := c.next(10 * time.Second)
		if d, ok := p.(*disconnectPacket); err != nil || !ok || d.Reason != rcKeepAliveTimeout {
			t.Fatalf("keepalive %d: got %#v (%v), want DISCONNECT 0x8D", asked, p, err)
		}
		if e := srv.rec.waitTCPClean(t, id); e.Reason != presence.ReasonKeepaliveTimeout {
			t.Fatalf("keepalive %d: tcpclean %s, want keepalive_timeout", asked, e.Reason)
		}
		for _, e := range srv.rec.forClient(id) {
			if e.Type == presence.EventConnect && e.Keepalive != 1 {
				t.Fatalf("keepalive %d: connect event keepalive %d, want the enforced 1", asked, e.Keepalive)
			}
		}
	}
	// Connected before both, silent since: a 3.1.1 client keeps its 60 s.
	old.send(&emptyPacket{Type: typePingreq})
	old.expect(typePingresp)
}

// aliasReader resolves the Topic Aliases a raw v5 subscriber receives
// [MQTT-3.3.2-12] and checks they stay within its maximum [MQTT-3.3.2-10].
type aliasReader struct {
	t       *testing.T
	max     uint16
	aliases map[uint16]string
}

// read receives one PUBLISH and returns it with its topic resolved, and
// the alias it came with (0: none) and whether it carried its topic.
func (a *aliasReader) read(c *rawClient) (p *publishPacket, alias uint16, withTopic bool) {
	a.t.Helper()
	p = c.receive(true)
	withTopic = p.Topic != ""
	if !p.Props.has(propTopicAlias) {
		if !withTopic {
			a.t.Fatalf("PUBLISH %+v without topic nor alias", p)
		}
		return p, 0, true
	}
	alias = p.Props.TopicAlias
	if alias == 0 || alias > a.max {
		a.t.Fatalf("Topic Alias %d outside 1..%d [MQTT-3.3.2-10]", alias, a.max)
	}
	if withTopic {
		a.aliases[alias] = p.Topic
	} else if p.Topic = a.aliases[alias]; p.Topic == "" {
		a.t.Fatalf("Topic Alias %d used before it was set", alias)
	}
	return p, alias, withTopic
}

// TestV5OutboundTopicAliases: a v5 subscriber whose CONNECT has a Topic
// Alias Maximum gets aliases up to it [MQTT-3.3.2-10]: the first PUBLISH
// of a topic with topic and alias, later ones with an empty topic
// [MQTT-3.3.2-12]; when all are taken, the least recently sent topic's
// alias is set anew. Properties and payload are unchanged. A client
// without Topic Alias Maximum, or a 3.1.1 one, gets none [MQTT-3.3.2-11].
func TestV5OutboundTopicAliases(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true})
	sub, ack := connectV5(t, srv.addr, connectPacket{ClientID: "alias-taker", CleanSession: true,
		Props: props(func(p *properties) { p.TopicAliasMaximum = 2 }, propTopicAliasMaximum)})
	if ack.ReturnCode != rcSuccess {
		t.Fatalf("CONNACK %+v", ack)
	}
	sub.subscribe(1, 1, "ta/#")
	plain := connectV5OK(t, srv.addr, "no-alias")
	plain.subscribe(1, 1, "ta/#")
	old := connectOK(t, srv.addr, "v3-sub")
	old.subscribe(1, 1, "ta/#")

	pub := connectV5OK(t, srv.addr, "alias-pub")
	user := props(func(p *properties) { p.User = []userProperty{{"n", "v"}} }, propUserProperty)
	steps := []struct {
		topic     string
		alias     uint16
		withTopic bool
	}{
		{"ta/a", 1, true}, {"ta/a", 1, false}, {"ta/b", 2, true},
		{"ta/c", 1, true}, // both taken: ta/a was sent least recently
		{"ta/a", 2, true}, // ta/b now is
		{"ta/c", 1, false},
	}
	for i, s := range steps {
		// QoS 0 and 1 alternate: the shared QoS 0 encoding and the
		// session's own QoS 1 one are aliased alike.
		pub.publish(&publishPacket{Topic: s.topic, QoS: byte(i % 2), ID: uint16(i + 1), Payload: []byte{byte(i)}, Props: user})
	}
	r := &aliasReader{t: t, max: 2, aliases: map[uint16]string{}}
	for i, s := range steps {
		p, alias, withTopic := r.read(sub)
		if p.Topic != s.topic || p.Payload[0] != byte(i) || alias != s.alias || withTopic != s.withTopic {
			t.Fatalf("PUBLISH %d: %s %v alias %d with topic %t, want %s alias %d with topic %t",
				i, p.Topic, p.Payload, alias, withTopic, s.topic, s.alias, s.withTopic)
		}
		if len(p.Props.User) != 1 || p.Props.User[0] != (userProperty{"n", "v"}) {
			t.Fatalf("PUBLISH %d properties %+v, want the publisher's User Property", i, p.Props)
		}
	}
	for _, c := range []*rawClient{plain, old} {
		for i, s := range steps {
			if p := c.receive(true); p.Topic != s.topic || p.Props.has(propTopicAlias) {
				t.Fatalf("PUBLISH %d %+v (%+v), want %s without an alias", i, p, p.Props, s.topic)
			}
		}
	}
}

// TestV5OutboundTopicAliasCap: whatever the client's Topic Alias Maximum,
// the server assigns at most maxOutboundTopicAliases per connection (the
// memory bound); every topic still arrives.
func TestV5OutboundTopicAliasCap(t *testing.T) {
	srv := startServer(t, Config{AllowAnonymous: true})
	sub, _ := connectV5(t, srv.addr, connectPacket{ClientID: "greedy", CleanSession: true,
		Props: props(func(p *properties) { p.TopicAliasMaximum = 1000 }, propTopicAliasMaximum)})
	sub.subscribe(1, 1, "cap/#")
	pub := connectOK(t, srv.addr, "cap-pub")
	const topics = maxOutboundTopicAliases + 4
	for round := range 2 {
		for i := range topics {
			pub.publish(&publishPacket{Topic: fmt.Sprintf("cap/%d", i), QoS: 1, ID: uint16(round*topics + i + 1), Payload: []byte("x")})
		}
	}
	r := &aliasReader{t: t, max: maxOutboundTopicAliases, aliases: map[uint16]string{}}
	for round := range 2 {
		for i := range topics {
			if p, alias, _ := r.read(sub); p.Topic != fmt.Sprintf("cap/%d", i) || alias == 0 {
				t.Fatalf("round %d PUBLISH %d: %s alias %d, want cap/%d with an alias", round, i, p.Topic, alias, i)
			}
		}
	}
}

// TestTopicAliasApplyKeepsPacket: apply splices the alias into QoS 0, 1
// and 2 PUBLISHes with and without properties so that they decode to the
// same message; it leaves other packets, and a PUBLISH the alias would
// take over the client's Maximum Packet Size, as they are.
func TestTopicAliasApplyKeepsPacket(t *testing.T) {
	ct := props(func(p *properties) { p.ContentType = "text/plain" }, propContentType)
	for _, in := range []*publishPacket{
		{V5: true, Topic: "a/b", Payload: []byte("zero")},
		{V5: true, Topic: "a/b", QoS: 1, ID: 7, Payload: []byte("one"), Props: ct},
		{V5: true, Topic: "a/b", QoS: 2, ID: 8, Dup: true, Retain: true, Payload: make([]byte, 200)},
	} {
		a := &outboundAliases{max: 1}
		wire := in.appendTo(nil)
		wantCT := ""
		if in.Props != nil {
			wantCT = in.Props.ContentType
		}
		for _, wantTopic := range []string{"a/b", ""} {
			out := a.apply(wire, 0)
			_, used, _ := decodeRemainingLength(out[1:])
			p, err := decodePacketV5(out[0], out[1+used:])
			if err != nil {
				t.Fatalf("%+v: aliased % x: %v", in, out, err)
			}
			got := p.(*publishPacket)
			if got.Topic != wantTopic || got.Props.TopicAlias != 1 || got.QoS != in.QoS || got.ID != in.ID ||
				got.Dup != in.Dup || got.Retain != in.Retain || string(got.Payload) != string(in.Payload) ||
				got.Props.has(propContentType) != in.Props.has(propContentType) || got.Props.ContentType != wantCT {
				t.Fatalf("aliased %+v (%+v), from %+v", got, got.Props, in)
			}
		}
	}
	a := &outboundAliases{max: 1}
	pub := (&publishPacket{V5: true, Topic: "t", Payload: []byte("x")}).appendTo(nil)
	if out := a.apply(pub, len(pub)); &out[0] != &pub[0] || len(a.entries) != 0 {
		t.Fatalf("an alias over the Maximum Packet Size was applied: % x", out)
	}
	ack := (&ackPacket{Type: typePuback, ID: 1}).appendTo(nil)
	if out := a.apply(ack, 0); &out[0] != &ack[0] {
		t.Fatalf("PUBACK changed: % x", out)
	}
}

// FuzzTopicAliasApply: apply never panics, and whatever v5 PUBLISH it is
// given comes out as the same message with a Topic Alias (or unchanged).
func FuzzTopicAliasApply(f *testing.F) {
	for _, fx := range v5PacketFixtures {
		f.Add(fx.wire)
	}
	f.Fuzz(func(t *testing.T, wire []byte) {
		in := (&outboundAliases{max: 2}).apply(wire, 0)
		if len(wire) < 2 || packetType(wire[0]>>4) != typePublish {
			return
		}
		n, used, err := decodeRemainingLength(wire[1:])
		if err != nil || used == 0 || n != len(wire)-1-used {
			return
		}
		want, err := decodePacketV5(wire[0], wire[1+used:])
		if err != nil || want.(*publishPacket).Props.has(propTopicAlias) {
			return
		}
		_, outUsed, _ := decodeRemainingLength(in[1:])
		got, err := decodePacketV5(in[0], in[1+outUsed:])
		if err != nil {
			t.Fatalf("aliased % x of % x: %v", in, wire, err)
		}
		w, g := want.(*publishPacket), got.(*publishPacket)
		if g.Topic != w.Topic || string(g.Payload) != string(w.Payload) || g.QoS != w.QoS || g.ID != w.ID || !g.Props.has(propTopicAlias) {
			t.Fatalf("aliased %+v, from %+v", g, w)
		}
	})
}
