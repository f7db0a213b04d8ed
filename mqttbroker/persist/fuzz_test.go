package persist

import "testing"

// FuzzJournalDecode feeds arbitrary bytes to the journal reader after a
// few valid records: it must not panic, must keep every valid record
// before the first bad one, and reading what it kept must find nothing
// bad (so recovery's cut is final).
func FuzzJournalDecode(f *testing.F) {
	var valid []byte
	var validCount int
	for _, op := range everyKindOps()[:10] {
		valid = appendFrame(valid, appendBody(nil, &op.rec))
		validCount++
	}
	f.Add([]byte{})
	f.Add(valid)
	f.Add(valid[:len(valid)-3])
	f.Add(appendFrame(nil, []byte{byte(kindEnd), 1}))
	f.Add(appendFrame(nil, []byte{byte(kindSend), 1, 'a', 0xff, 0xff, 0x03, 0, 0}))
	f.Fuzz(func(t *testing.T, tail []byte) {
		journal := append(append([]byte(nil), valid...), tail...)
		st := newState()
		var z sizer
		var live int64
		count := 0
		end, why := scanRecords(journal, func(rec *record) {
			live += z.sizeDelta(st, rec)
			st.apply(rec)
			count++
		})
		if count < validCount || end < len(valid) {
			t.Fatalf("kept %d records (%d bytes), fewer than the %d valid ones", count, end, validCount)
		}
		if (why == "") != (end == len(journal)) {
			t.Fatalf("scan ended at %d of %d with reason %q", end, len(journal), why)
		}
		again := newState()
		end2, why2 := scanRecords(journal[:end], again.apply)
		if end2 != end || why2 != "" {
			t.Fatalf("rescan of the kept records: end %d (want %d), reason %q", end2, end, why2)
		}
		assertState(t, "rescan", again, st)
		// The size bookkeeping stays exact whatever the records did.
		s := &Store{state: st, liveBytes: live}
		if snap, _ := s.encodeStateLocked(); int64(len(snap)) != live {
			t.Fatalf("live bytes %d, snapshot %d bytes", live, len(snap))
		}
	})
}

// FuzzRecordDecode: whatever decodeBody accepts, it encodes back to a body
// that decodes to the same record.
func FuzzRecordDecode(f *testing.F) {
	for _, op := range everyKindOps() {
		f.Add(appendBody(nil, &op.rec))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rec, err := decodeBody(body)
		if err != nil {
			return
		}
		again, err := decodeBody(appendBody(nil, &rec))
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if normalizedRecord(again) != normalizedRecord(rec) {
			t.Fatalf("round trip changed the record: %+v → %+v", rec, again)
		}
	})
}

func normalizedRecord(r record) string {
	return string(appendBody(nil, &r))
}
