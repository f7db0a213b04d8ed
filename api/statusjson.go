package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/presenced/presenced/presence"
)

// The online lookup is the hot path of the API (callers ask on every
// request of theirs), so its answer is encoded by hand: encoding/json's
// reflection and time marshalling were a third of its cost. The output is
// byte-for-byte what json.Marshal gives for presence.Status
// (TestStatusJSONMatchesEncodingJSON).

// appendStatus appends st as JSON.
func appendStatus(b []byte, st presence.Status) []byte {
	b = append(b, `{"clientId":`...)
	b = presence.AppendJSONString(b, st.ClientID)
	b = append(b, `,"online":`...)
	b = strconv.AppendBool(b, st.Online)
	b = append(b, `,"state":`...)
	b = presence.AppendJSONString(b, string(st.State))
	b = append(b, `,"openChannels":`...)
	b = strconv.AppendInt(b, int64(st.OpenChannels), 10)
	if st.Since != nil {
		b = append(b, `,"since":`...)
		b = appendJSONTime(b, *st.Since)
	}
	if st.LastEventAt != nil {
		b = append(b, `,"lastEventAt":`...)
		b = appendJSONTime(b, *st.LastEventAt)
	}
	if st.Node != "" {
		b = append(b, `,"node":`...)
		b = presence.AppendJSONString(b, st.Node)
	}
	return append(b, '}')
}

func appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// Header values shared by every JSON answer; net/http never modifies them.
var (
	headerJSON    = []string{"application/json"}
	headerNoStore = []string{"no-store"}
)

// writeRawJSON writes an encoded JSON body with status 200.
func writeRawJSON(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h["Content-Type"] = headerJSON
	h["Cache-Control"] = headerNoStore
	if n := len(body); n < len(contentLengths) {
		h["Content-Length"] = contentLengths[n]
	} else {
		h["Content-Length"] = []string{strconv.Itoa(n)}
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// contentLengths are the Content-Length values of bodies up to 1 KiB, made
// once: a lookup's answer is a few hundred bytes, and net/http only reads
// header values, so every request can share them (two allocations fewer).
var contentLengths = func() [][]string {
	v := make([][]string, 1024)
	for n := range v {
		v[n] = []string{strconv.Itoa(n)}
	}
	return v
}()
