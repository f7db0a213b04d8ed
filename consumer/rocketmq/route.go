package rocketmq

import (
	"bytes"
	"encoding/json"
)

// eventRoute is what routing needs of an event: its topic (from the
// client id), tag and key.
type eventRoute struct {
	ClientID  string `json:"clientId"`
	ChannelID string `json:"channelId"`
	Type      string `json:"eventType"`
}

// routeOf reads the routing fields of an event payload. The broker writes
// every payload with encoding/json from presence.Event, whose first three
// fields are clientId, channelId and eventType, in that order; for such a
// payload with no escapes in those strings the fields are sliced out
// directly — a full decode was a fifth of the forwarder's CPU time while
// draining a backlog. Anything else (another field order, escapes, a payload
// from another writer) takes the full decode, which is always right.
func routeOf(payload []byte) (eventRoute, error) {
	if r, ok := routeFast(payload); ok {
		return r, nil
	}
	var r eventRoute
	err := json.Unmarshal(payload, &r)
	return r, err
}

// routeFast slices the three fields out of a payload laid out as
// {"clientId":"…","channelId":"…","eventType":"…",…} with no backslash in
// any of the three strings, and reports whether it was.
func routeFast(p []byte) (eventRoute, bool) {
	var r eventRoute
	var ok bool
	if p, ok = bytes.CutPrefix(p, []byte(`{"clientId":"`)); !ok {
		return r, false
	}
	if r.ClientID, p, ok = plainString(p); !ok {
		return r, false
	}
	if p, ok = bytes.CutPrefix(p, []byte(`,"channelId":"`)); !ok {
		return r, false
	}
	if r.ChannelID, p, ok = plainString(p); !ok {
		return r, false
	}
	if p, ok = bytes.CutPrefix(p, []byte(`,"eventType":"`)); !ok {
		return r, false
	}
	if r.Type, p, ok = plainString(p); !ok {
		return r, false
	}
	// The object goes on (or ends); a valid payload is checked in full
	// by the consumer, which parks what it cannot decode.
	return r, len(p) > 0 && (p[0] == ',' || p[0] == '}')
}

// plainString returns the content of a JSON string up to its closing quote
// (p starts after the opening one) and the rest after it, if the string
// has no escapes and no control characters: then its bytes are its value.
func plainString(p []byte) (string, []byte, bool) {
	for i, c := range p {
		switch {
		case c == '"':
			return string(p[:i]), p[i+1:], true
		case c == '\\' || c < 0x20:
			return "", nil, false
		}
	}
	return "", nil, false
}
