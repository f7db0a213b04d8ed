package persist

// The store bounds its live state by its encoded size: the bytes the next
// snapshot would take (liveBytes, without the snapshot's header and end
// record). sizeDelta says how much one record changes it, against the
// state before the record is applied; it mirrors apply and snapshotRecords.

// sizer measures framed records with one reusable buffer.
type sizer struct{ scratch []byte }

func (z *sizer) size(rec *record) int64 {
	z.scratch = appendBody(z.scratch[:0], rec)
	return int64(frameHeaderBytes + len(z.scratch))
}

func (z *sizer) sessionRecord(ss *Session) int64 {
	return z.size(&record{kind: kindPutSession, info: ss.SessionInfo})
}

func (z *sizer) subscribeRecord(clientID, filter string, sub Subscription) int64 {
	return z.size(&record{kind: kindSubscribe, info: SessionInfo{ClientID: clientID}, msg: Message{Topic: filter}, sub: sub})
}

func (z *sizer) enqueueRecord(clientID string, m Message) int64 {
	return z.size(&record{kind: kindEnqueue, info: SessionInfo{ClientID: clientID}, msg: m})
}

func (z *sizer) sendRecord(clientID string, m Inflight) int64 {
	return z.size(&record{kind: kindSend, info: SessionInfo{ClientID: clientID}, msg: m.Message, id: m.PacketID, released: m.Released})
}

func (z *sizer) holdRecord(clientID string, id uint16) int64 {
	return z.size(&record{kind: kindHoldInbound, info: SessionInfo{ClientID: clientID}, id: id})
}

// sessionSize is everything a session adds to a snapshot.
func (z *sizer) sessionSize(ss *Session) int64 {
	n := z.sessionRecord(ss)
	for filter, sub := range ss.Subscriptions {
		n += z.subscribeRecord(ss.ClientID, filter, sub)
	}
	for _, m := range ss.Inflight {
		n += z.sendRecord(ss.ClientID, m)
	}
	for _, m := range ss.Queue {
		n += z.enqueueRecord(ss.ClientID, m)
	}
	for id := range ss.Unreleased {
		n += z.holdRecord(ss.ClientID, id)
	}
	return n
}

// sizeDelta is the change of liveBytes that applying rec to st makes.
func (z *sizer) sizeDelta(st *State, rec *record) int64 {
	switch rec.kind {
	case kindSetRetained:
		n := z.size(rec)
		if old, ok := st.Retained[rec.msg.Topic]; ok {
			n -= z.size(&record{kind: kindSetRetained, msg: old})
		}
		return n
	case kindDeleteRetained:
		if old, ok := st.Retained[rec.msg.Topic]; ok {
			return -z.size(&record{kind: kindSetRetained, msg: old})
		}
		return 0
	}
	ss := st.Sessions[rec.info.ClientID]
	switch {
	case rec.kind == kindPutSession && ss == nil:
		return z.size(rec)
	case ss == nil:
		return 0 // ignored by apply
	}
	switch rec.kind {
	case kindPutSession:
		return z.size(rec) - z.sessionRecord(ss)
	case kindDeleteSession:
		return -z.sessionSize(ss)
	case kindSubscribe:
		n := z.size(rec)
		if old, ok := ss.Subscriptions[rec.msg.Topic]; ok {
			n -= z.subscribeRecord(ss.ClientID, rec.msg.Topic, old)
		}
		return n
	case kindUnsubscribe:
		if old, ok := ss.Subscriptions[rec.msg.Topic]; ok {
			return -z.subscribeRecord(ss.ClientID, rec.msg.Topic, old)
		}
	case kindEnqueue, kindSend:
		return z.size(rec)
	case kindDequeue:
		if len(ss.Queue) > 0 {
			return -z.enqueueRecord(ss.ClientID, ss.Queue[0])
		}
	case kindSendQueued:
		if len(ss.Queue) > 0 {
			head := ss.Queue[0]
			return z.sendRecord(ss.ClientID, Inflight{Message: head, PacketID: rec.id}) - z.enqueueRecord(ss.ClientID, head)
		}
	case kindAcked:
		if i := ss.findInflight(rec.id); i >= 0 {
			return -z.sendRecord(ss.ClientID, ss.Inflight[i])
		}
	case kindHoldInbound:
		if _, ok := ss.Unreleased[rec.id]; !ok {
			return z.size(rec)
		}
	case kindReleaseInbound:
		if _, ok := ss.Unreleased[rec.id]; ok {
			return -z.holdRecord(ss.ClientID, rec.id)
		}
	}
	return 0 // kindReleased: a flag byte that is already there
}
