package rocketmq

import (
	"encoding/binary"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/rocketmq-client-go/v2/producer"
)

// batchItem is one message of a batch body, as a broker reads it.
type batchItem struct {
	flag  uint32
	body  string
	props map[string]string
}

// parseBatch reads a batch body the way a RocketMQ broker does
// (MessageDecoder.decodeMessages), checking every length.
func parseBatch(t *testing.T, b []byte) []batchItem {
	t.Helper()
	var items []batchItem
	be := binary.BigEndian
	for len(b) > 0 {
		if len(b) < 20 {
			t.Fatalf("%d bytes left, less than a message header", len(b))
		}
		total, bodyLen := int(be.Uint32(b)), int(be.Uint32(b[16:]))
		if total > len(b) || 20+bodyLen+2 > total {
			t.Fatalf("message of %d bytes with a body of %d in %d bytes", total, bodyLen, len(b))
		}
		propsLen := int(be.Uint16(b[20+bodyLen:]))
		if 20+bodyLen+2+propsLen != total {
			t.Fatalf("message sizes %d + %d do not add up to %d", bodyLen, propsLen, total)
		}
		it := batchItem{flag: be.Uint32(b[12:]), body: string(b[20 : 20+bodyLen]), props: map[string]string{}}
		for _, kv := range strings.Split(string(b[22+bodyLen:total]), "\x02") {
			if k, v, ok := strings.Cut(kv, "\x01"); ok {
				it.props[k] = v
			}
		}
		items = append(items, it)
		b = b[total:]
	}
	return items
}

// The forwarder's own batch encoding carries what the client's would for
// the same messages (properties in another order: the client's come from
// a map).
func TestBatchMessageMatchesTheClientsEncoding(t *testing.T) {
	r := Routing{Topic: "presence"}
	var outs []outMessage
	for _, payload := range []string{
		`{"clientId":"d1","channelId":"ch1","eventType":"connect","time":1}`,
		`{"clientId":"d1","channelId":"ch1","eventType":"tcpclean","time":2,"reason":"client_closed"}`,
		`{"clientId":"d2","channelId":"ch-ü","eventType":"disconnect","time":3}`,
	} {
		out, err := r.message(Entry{Kind: KindEvent, Payload: []byte(payload)})
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, out)
	}
	node, err := r.message(Entry{Kind: KindNode, Payload: []byte(`{"node":"n1","epoch":"e1","eventType":"node_start","time":1,"seq":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, node)

	batch := batchMessage(outs, 3)
	if !batch.Batch || batch.Topic != "presence" || batch.Queue == nil || batch.Queue.QueueId != 3 {
		t.Fatalf("batch message %+v, queue %+v", batch, batch.Queue)
	}
	if props := batch.MarshallProperties(); props != "" {
		t.Fatalf("the batch message itself has properties %q", props)
	}
	want := parseBatch(t, producer.MarshalMessageBatch(outs[0].primitive(), outs[1].primitive(), outs[2].primitive(), outs[3].primitive()))
	got := parseBatch(t, batch.Body)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("batch reads as\n%+v\nthe client's as\n%+v", got, want)
	}
	if len(got) != 4 || got[3].props["TAGS"] != "node" || got[3].props["KEYS"] != "n1 e1" || got[0].props["SHARDING_KEY"] != "ch1" {
		t.Fatalf("unexpected messages %+v", got)
	}
}
