package rocketmqfake

import (
	"bytes"
	"testing"
)

// TestPropValue: single lookups agree with the full parse, including
// duplicate keys, empty values, items without a separator and values that
// contain the name/value separator.
func TestPropValue(t *testing.T) {
	raws := []string{
		"",
		"TAGS\x01connect\x02KEYS\x01a b\x02",
		"TAGS\x01connect",                      // no trailing separator
		"TAGS\x01a\x02TAGS\x01b\x02",           // the last one wins
		"TAGS\x01\x02",                         // empty value
		"TAGS\x02TAGSX\x01no\x02\x01empty\x02", // no value, longer key, empty key
		"TAGS\x01x\x01y\x02\x02\x02",           // separator in the value, empty items
		"XTAGS\x01no\x02KEYS\x01k\x02",
	}
	for _, raw := range raws {
		want := parseProperties(raw)
		for _, key := range []string{propTags, propKeys, propDelay} {
			got, ok := propValue(raw, key)
			w, wok := want[key]
			if got != w || ok != wok {
				t.Errorf("propValue(%q, %s) = %q, %t; parseProperties has %q, %t", raw, key, got, ok, w, wok)
			}
		}
	}
}

// TestEncodeInto: records carved from one chunk do not overlap, cannot be
// appended into their neighbour, and body and properties read back from
// the record.
func TestEncodeInto(t *testing.T) {
	var a recordArena
	host := parseHostPort("127.0.0.1:10911")
	var msgs []*storedMsg
	for _, body := range []string{"one", "", "three", string(make([]byte, maxChunkedRecord+1))} {
		m := &storedMsg{topic: "t", bornHost: host, storeHost: host, body: []byte(body)}
		m.setProps(map[string]string{propTags: "tag-" + body[:min(len(body), 5)], propKeys: "k"})
		want := m.appendRecord(nil)
		m.encodeInto(&a)
		if !bytes.Equal(m.wire, want) || cap(m.wire) != len(m.wire) {
			t.Fatalf("record of %q: len %d cap %d, want len %d", body, len(m.wire), cap(m.wire), len(want))
		}
		if string(m.body) != body || cap(m.body) != len(m.body) || m.tags != "tag-"+body[:min(len(body), 5)] {
			t.Errorf("body %q (cap %d), tags %q", m.body, cap(m.body), m.tags)
		}
		msgs = append(msgs, m)
	}
	_ = append(msgs[0].wire, 'x') // must not run into msgs[1]
	if want := msgs[1].appendRecord(nil); !bytes.Equal(msgs[1].wire, want) {
		t.Error("appending to one record changed the next")
	}
}
