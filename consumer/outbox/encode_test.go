package outbox

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/durable"
)

// The framed record is what appendRecord makes of json.Marshal's bytes,
// and it decodes back to the event.
func TestAppendedEventDecodes(t *testing.T) {
	ev := testEvent(presence.EventConnect, 7)
	rec := frameEvent(&ev)
	defer releaseRecord(rec)
	want, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	if framed := appendRecord(nil, KindEvent, want); !bytes.Equal(*rec, framed) {
		t.Fatalf("frameEvent % x, want % x", *rec, framed)
	}
	res, body, size, why := durable.ParseFrame(*rec, maxBodyBytes)
	if res != durable.Whole || size != len(*rec) || Kind(body[0]) != KindEvent {
		t.Fatalf("frame: %v %d %s", res, size, why)
	}
	got, err := Record{Seq: 1, Kind: KindEvent, Payload: body[1:]}.Event()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, ev) {
		t.Fatalf("decoded %+v, want %+v", got, ev)
	}
}

func BenchmarkEncodeEvent(b *testing.B) {
	ev := testEvent(presence.EventConnect, 7)
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("frameEvent", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			releaseRecord(frameEvent(&ev))
		}
	})
}
