package presence

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// encodedFields are the Event fields AppendEventJSON writes, in
// order. A new field of Event fails TestEventEncoderKnowsEveryField
// until the encoder writes it too.
var encodedFields = []string{
	"ClientID", "ChannelID", "Type", "Time", "ClientIP", "Node", "Epoch", "Reason", "TakeoverBy",
	"NodeSeq", "Username", "Keepalive", "CleanSession", "TLSVersion", "TLSClientSubject",
	"ProtocolLevel", "ReasonCode",
}

func TestEventEncoderKnowsEveryField(t *testing.T) {
	typ := reflect.TypeFor[Event]()
	var have []string
	for f := range typ.Fields() {
		have = append(have, f.Name)
	}
	if !reflect.DeepEqual(have, encodedFields) {
		t.Fatalf("Event has fields %v; AppendEventJSON writes %v: teach it the new ones", have, encodedFields)
	}
}

func checkEncodesLikeJSON(t *testing.T, ev Event) {
	t.Helper()
	want, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	if got := AppendEventJSON(nil, &ev); !bytes.Equal(got, want) {
		t.Fatalf("AppendEventJSON\n got %s\nwant %s", got, want)
	}
}

func TestEventEncoderMatchesJSON(t *testing.T) {
	yes, no := true, false
	zero, code := 0, 0x8e
	full := Event{
		ClientID: "GID_a@@@dev-1", ChannelID: "0123456789abcdef0123456789abcdef", Type: EventTCPClean,
		Time: 1764755000123, ClientIP: "127.0.0.1:50000", Node: "node-1", Epoch: "e1",
		Reason: ReasonTakeover, TakeoverBy: "fedcba9876543210fedcba9876543210", NodeSeq: 1<<64 - 1,
		Username: "user", Keepalive: 60, CleanSession: &yes, TLSVersion: "TLS 1.3",
		TLSClientSubject: "CN=x,O=<y & z>", ProtocolLevel: 5, ReasonCode: &code,
	}
	for _, ev := range []Event{
		{},
		full,
		{ClientID: "c", ChannelID: "ch", Type: EventConnect, Time: -5, CleanSession: &no, ReasonCode: &zero, Keepalive: -1},
		{ClientID: "q\"uote\\back\x00\x01\x1f\b\f\n\r\t\x7f", ClientIP: "<script>&amp;</script>"},
		{ClientID: "ünïcødé \u2028 \u2029 \U0001F600", Username: "bad \xff\xfe utf8 \xc3", Node: "\xed\xa0\x80"},
	} {
		checkEncodesLikeJSON(t, ev)
	}
}

func FuzzEventEncoder(f *testing.F) {
	f.Add("GID_a@@@dev-1", "0123456789abcdef", "connect", int64(1), "1.2.3.4:5", "n", "e", "", "", uint64(7), "u", 60, 1, "", "", 4, -1)
	f.Add("<\x00\xff>", "\u2028", "tcpclean", int64(-1), "&", "", "", "r", "t", uint64(0), "", 0, 2, "TLS 1.2", "CN=\"x\"", 0, 0x8e)
	f.Fuzz(func(t *testing.T, clientID, channelID, typ string, tm int64, ip, node, epoch, reason, takeover string,
		seq uint64, user string, keepalive, clean int, tlsVersion, subject string, level, reasonCode int) {
		ev := Event{
			ClientID: clientID, ChannelID: channelID, Type: EventType(typ), Time: tm, ClientIP: ip,
			Node: node, Epoch: epoch, Reason: Reason(reason), TakeoverBy: takeover, NodeSeq: seq,
			Username: user, Keepalive: keepalive, TLSVersion: tlsVersion, TLSClientSubject: subject, ProtocolLevel: level,
		}
		if clean != 0 {
			b := clean > 0
			ev.CleanSession = &b
		}
		if reasonCode >= 0 {
			ev.ReasonCode = &reasonCode
		}
		checkEncodesLikeJSON(t, ev)
	})
}
