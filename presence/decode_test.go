package presence

import (
	"errors"
	"runtime"
	"strings"
	"testing"
)

func TestDecodeEventAlibabaBody(t *testing.T) {
	body := `{"clientId":"GID_demo@@@device-1","channelId":"2b9b1281046046faafe5e0b458e4f00b","eventType":"tcpclean","time":1732240000123,"clientIp":"42.120.74.183:34230"}`
	e, err := DecodeEvent([]byte(body))
	if err != nil {
		t.Fatalf("DecodeEvent: %v", err)
	}
	if e.ClientID != "GID_demo@@@device-1" || e.Type != EventTCPClean || e.Time != 1732240000123 || e.ClientIP != "42.120.74.183:34230" {
		t.Fatalf("decoded %+v", e)
	}
}

func TestDecodeEventErrors(t *testing.T) {
	tests := map[string]string{
		"not json":       `{"clientId":`,
		"wrong type":     `{"clientId":"a","channelId":"b","eventType":"connect","time":"yesterday"}`,
		"missing fields": `{}`,
		"bad event type": `{"clientId":"a","channelId":"b","eventType":"online","time":1}`,
	}
	wants := map[string]string{
		"not json":       "not valid JSON",
		"wrong type":     `field "time"`,
		"missing fields": "clientId: must not be empty",
		"bad event type": `"online" is not one of`,
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeEvent([]byte(body))
			if err == nil || ErrorCode(err) != EINVALID || !strings.Contains(err.Error(), wants[name]) {
				t.Fatalf("DecodeEvent(%s) = %v, want EINVALID containing %q", body, err, wants[name])
			}
		})
	}
}

func TestDecodeEventsBatchNamesIndex(t *testing.T) {
	body := `[{"clientId":"a","channelId":"c1","eventType":"connect","time":1},{"clientId":"b#","channelId":"c2","eventType":"connect","time":1}]`
	events, err := DecodeEvents([]byte(body), 10)
	var problems Problems
	if events != nil || !errors.As(err, &problems) {
		t.Fatalf("DecodeEvents = %v, %v; want no events and Problems", events, err)
	}
	if len(problems) != 1 || problems[0].Field != "[1].clientId" {
		t.Fatalf("problems = %v, want one about [1].clientId", problems)
	}
	if _, err := DecodeEvents([]byte(`[]`), 10); err == nil {
		t.Fatal("empty array accepted")
	}
	if _, err := DecodeEvents([]byte(`[{},{},{}]`), 2); err == nil || !strings.Contains(err.Error(), "at most 2") {
		t.Fatalf("over the limit: %v", err)
	}
	one, err := DecodeEvents([]byte(` {"clientId":"a","channelId":"c1","eventType":"disconnect","time":5}`), 10)
	if err != nil || len(one) != 1 || one[0].Type != EventDisconnect {
		t.Fatalf("single object: %v %v", one, err)
	}
}

// FuzzDecodeEvent checks that no input crashes the decoder and that every
// accepted event is valid and survives a round trip.
func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte(`{"clientId":"GID_demo@@@device-1","channelId":"9f1c0a7e3b2d4c5f8e9a0b1c2d3e4f50","eventType":"connect","time":1732240000123,"clientIp":"203.0.113.7:52311"}`))
	f.Add([]byte(`{"clientId":"x","channelId":"y","eventType":"tcpclean","time":1,"reason":"takeover","node":"n","epoch":"e"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := DecodeEvent(data)
		if err != nil {
			if ErrorCode(err) != EINVALID {
				t.Fatalf("error code %q for %q: %v", ErrorCode(err), data, err)
			}
			return
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("accepted an invalid event: %v", err)
		}
	})
}

// allocatedBy returns the bytes allocated while f ran.
func allocatedBy(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestDecodeEventsStopsAtTheLimit: an array of a million empty objects
// (3 MiB, within the API's body limit) is refused after the first
// maxEvents+1, without building the rest — decoded whole, it took over
// 200 MiB for one request.
func TestDecodeEventsStopsAtTheLimit(t *testing.T) {
	body := []byte("[" + strings.Repeat("{},", 1<<20) + "{}]")
	var err error
	allocated := allocatedBy(func() { _, err = DecodeEvents(body, 1000) })
	if allocated > 8<<20 {
		t.Fatalf("DecodeEvents allocated %d MiB for a %d MiB body it refuses", allocated>>20, len(body)>>20)
	}
	if err == nil || !strings.Contains(err.Error(), "more than 1000 events in one request") {
		t.Fatalf("DecodeEvents of %d elements: %v, want the limit named", 1<<20+1, err)
	}
	// Within the limit, and malformed after it, arrays still decode and fail as before.
	if _, err := DecodeEvents([]byte(`[{"clientId":"a","channelId":"c","eventType":"connect","time":1}] x`), 1000); err == nil {
		t.Fatal("data after the array was accepted")
	}
	if events, err := DecodeEvents([]byte(` [{"clientId":"a","channelId":"c","eventType":"connect","time":1}] `), 1000); err != nil || len(events) != 1 {
		t.Fatalf("one event in an array: %v, %v", events, err)
	}
}
