package presence

import (
	"encoding/json"
	"reflect"
	"testing"
)

// brokerBodies are payloads as presenced brokers write them (encoding/json
// of Event), which the fast path must take.
var brokerBodies = []string{
	`{"clientId":"GID_demo@@@device-1","channelId":"9f1c0a7e3b2d4c5f8e9a0b1c2d3e4f50","eventType":"connect","time":1732240000123,"clientIp":"203.0.113.7:52311","node":"n1","epoch":"e1","nodeSeq":42,"username":"u","keepalive":60,"cleanSession":true}`,
	`{"clientId":"x","channelId":"y","eventType":"tcpclean","time":1,"clientIp":"","node":"n","epoch":"e","reason":"takeover","nodeSeq":7}`,
	`{"clientId":"GID_demo@@@device-1","channelId":"2b9b","eventType":"disconnect","time":-5,"clientIp":"[::1]:1","cleanSession":false}`,
	`{"clientId":"ü-device","channelId":"c","eventType":"connect","time":0}`,
	`{}`,
}

func TestDecodeEventFastTakesBrokerBodies(t *testing.T) {
	for _, body := range brokerBodies {
		fast, ok := decodeEventFast([]byte(body))
		if !ok {
			t.Errorf("fast path refused a broker body: %s", body)
			continue
		}
		var slow Event
		if err := json.Unmarshal([]byte(body), &slow); err != nil {
			t.Fatalf("encoding/json: %v", err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Errorf("%s:\nfast %+v\njson %+v", body, fast, slow)
		}
	}
}

// Every shape outside the fast path's must be left to encoding/json, which
// may read it differently (case-insensitive keys, last repeat wins, null
// leaves a field alone) or refuse it.
func TestDecodeEventFastLeavesTheRestToEncodingJSON(t *testing.T) {
	for name, body := range map[string]string{
		"unknown key":       `{"clientId":"a","extra":1}`,
		"other case":        `{"ClientID":"a"}`,
		"repeated key":      `{"clientId":"a","clientId":"b"}`,
		"escape":            `{"clientId":"a\"b"}`,
		"unicode escape":    `{"clientId":"\u0061"}`,
		"null":              `{"clientId":null}`,
		"space":             `{ "clientId":"a"}`,
		"trailing":          `{"clientId":"a"} `,
		"fraction":          `{"time":1.5}`,
		"exponent":          `{"time":1e3}`,
		"leading zero":      `{"time":01}`,
		"19 digits":         `{"time":1234567890123456789}`,
		"negative nodeSeq":  `{"nodeSeq":-0}`,
		"string time":       `{"time":"1"}`,
		"invalid utf-8":     "{\"clientId\":\"\xff\"}",
		"control character": "{\"clientId\":\"a\tb\"}",
		"array":             `[]`,
		"truncated":         `{"clientId":"a"`,
		"bool prefix":       `{"cleanSession":truex}`,
	} {
		if e, ok := decodeEventFast([]byte(body)); ok {
			t.Errorf("%s: fast path took %s as %+v", name, body, e)
		}
	}
}

// FuzzDecodeEventFast: whatever the fast path accepts, encoding/json
// accepts too and reads identically.
func FuzzDecodeEventFast(f *testing.F) {
	for _, body := range brokerBodies {
		f.Add([]byte(body))
	}
	f.Add([]byte(`{"time":-0,"keepalive":9223372036854775807}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := decodeEventFast(data)
		if !ok {
			return
		}
		var slow Event
		if err := json.Unmarshal(data, &slow); err != nil {
			t.Fatalf("fast path accepted %q, encoding/json refuses it: %v", data, err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q:\nfast %+v\njson %+v", data, fast, slow)
		}
	})
}

// BenchmarkDecodeEvent/fast is DecodeEvent on a broker body; /json is the
// same body through encoding/json alone, for the ratio.
func BenchmarkDecodeEvent(b *testing.B) {
	body := []byte(brokerBodies[0])
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeEvent(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var e Event
			if err := json.Unmarshal(body, &e); err != nil {
				b.Fatal(err)
			}
		}
	})
}
