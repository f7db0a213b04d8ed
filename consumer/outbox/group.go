package outbox

import (
	"encoding/binary"
	"encoding/json"

	"github.com/presenced/presenced/presence"
)

// group is one group commit: the records appended while the previous group
// was being written.
type group struct {
	buf       []byte
	firstSeq  uint64
	count     uint64
	refusable uint64        // records that are not alwaysAccepted
	done      chan struct{} // closed when written and synced, or failed
	err       error
	// moved is set when the disk refused the group: err then answers its
	// refusable records, and the others carry on in moved.
	moved *group
}

func newGroup(firstSeq uint64) *group {
	return &group{firstSeq: firstSeq, done: make(chan struct{})}
}

func (g *group) add(kind Kind, payload []byte, mustAccept bool) {
	g.buf = appendRecord(g.buf, kind, payload)
	g.counted(mustAccept)
}

// addRecord adds a record already framed.
func (g *group) addRecord(rec []byte, mustAccept bool) {
	g.buf = append(g.buf, rec...)
	g.counted(mustAccept)
}

func (g *group) counted(mustAccept bool) {
	g.count++
	if !mustAccept {
		g.refusable++
	}
}

// wait returns the outcome of one record appended to g.
func (g *group) wait(mustAccept bool) error {
	<-g.done
	for mustAccept && g.moved != nil {
		g = g.moved
		<-g.done
	}
	return g.err
}

// finish settles g's records with err (nil: durable).
func (g *group) finish(err error) {
	g.err = err
	close(g.done)
	g.buf = nil
}

// refuseRefusable answers g's refusable records with err and returns the
// group that carries on with the others, in order, from the same first
// sequence number; the caller renumbers what follows. It returns g itself
// when g has no refusable records.
func (g *group) refuseRefusable(err error) *group {
	if g.refusable == 0 {
		return g
	}
	kept := newGroup(g.firstSeq)
	for off := 0; off < len(g.buf); {
		rec := g.buf[off : off+recordHeaderBytes+int(binary.LittleEndian.Uint32(g.buf[off:]))]
		if recordAlwaysAccepted(rec) {
			kept.buf = append(kept.buf, rec...)
			kept.count++
		}
		off += len(rec)
	}
	g.moved = kept
	g.finish(err)
	return kept
}

// recordAlwaysAccepted says whether a framed record holds a disconnect or
// tcpclean. The appender knew, but keeping a flag per record would cost on
// every append; decoding is only needed when the disk is full.
func recordAlwaysAccepted(rec []byte) bool {
	body := rec[recordHeaderBytes:]
	if Kind(body[0]) != KindEvent {
		return false
	}
	var ev presence.Event
	if err := json.Unmarshal(body[1:], &ev); err != nil {
		return true // cannot happen (Append encoded it); keeping it is the safe side
	}
	return alwaysAccepted(ev.Type)
}
