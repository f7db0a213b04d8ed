package presence

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// MaxEventBytes bounds the size of one encoded event; real events are a few
// hundred bytes.
const MaxEventBytes = 8 << 10

// DecodeEvent parses one event in the wire JSON and validates it. Unknown
// keys are ignored, so newer brokers can add fields; Alibaba's five keys
// alone are enough.
func DecodeEvent(data []byte) (Event, error) {
	if len(data) > MaxEventBytes {
		return Event{}, Errorf(EINVALID, "event is %d bytes; at most %d are allowed", len(data), MaxEventBytes)
	}
	e, ok := decodeEventFast(data)
	if !ok {
		e = Event{}
		if err := json.Unmarshal(data, &e); err != nil {
			return Event{}, Errorf(EINVALID, "event is not valid JSON: %s", JSONProblem(err))
		}
	}
	if err := e.Validate(); err != nil {
		return e, err
	}
	return e, nil
}

// DecodeEvents parses either one event object or an array of events, as
// webhooks of other brokers send them. Every event is validated; the
// problems of all of them are returned together, each prefixed with its
// index, and no events are returned when any is invalid.
func DecodeEvents(data []byte, maxEvents int) ([]Event, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, Errorf(EINVALID, "body is empty; expected an event object or an array of events")
	}
	var events []Event
	if trimmed[0] == '[' {
		var err error
		if events, err = decodeEventArray(trimmed, maxEvents); err != nil {
			return nil, err
		}
		if len(events) == 0 {
			return nil, Errorf(EINVALID, "the array holds no events")
		}
	} else {
		var e Event
		if err := json.Unmarshal(trimmed, &e); err != nil {
			return nil, Errorf(EINVALID, "body is not a valid JSON event: %s", JSONProblem(err))
		}
		events = []Event{e}
	}
	if maxEvents > 0 && len(events) > maxEvents {
		return nil, Errorf(EINVALID, "%d events in one request; at most %d are allowed", len(events), maxEvents)
	}
	var problems Problems
	for i, e := range events {
		var p Problems
		if errors.As(e.Validate(), &p) {
			for _, pe := range p {
				field := pe.Field
				if len(events) > 1 || trimmed[0] == '[' {
					field = fmt.Sprintf("[%d].%s", i, pe.Field)
				}
				problems = append(problems, &Error{Code: EINVALID, Field: field, Message: pe.Message})
			}
		}
	}
	if err := problems.Err(); err != nil {
		return nil, err
	}
	return events, nil
}

// decodeEventArray decodes a JSON array of events one element at a time and
// stops at the first beyond maxEvents (0: no limit): decoded whole, a body
// of a few MiB of empty objects ([{},{},…]) became over a million Events,
// hundreds of MiB for one request.
func decodeEventArray(data []byte, maxEvents int) ([]Event, error) {
	invalid := func(err error) error {
		return Errorf(EINVALID, "body is not a valid JSON array of events: %s", JSONProblem(err))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // the '[' the caller saw
		return nil, invalid(err)
	}
	var events []Event
	for dec.More() {
		if maxEvents > 0 && len(events) == maxEvents {
			return nil, Errorf(EINVALID, "more than %d events in one request; at most %d are allowed", maxEvents, maxEvents)
		}
		var e Event
		if err := dec.Decode(&e); err != nil {
			return nil, invalid(err)
		}
		events = append(events, e)
	}
	if _, err := dec.Token(); err != nil { // ']'
		return nil, invalid(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, Errorf(EINVALID, "body is not a valid JSON array of events: data after the array")
	}
	return events, nil
}

// JSONProblem turns an encoding/json error into a short message that names
// the offending field or offset without echoing the input or naming Go
// types (which are no business of a client).
func JSONProblem(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return fmt.Sprintf("must be a JSON %s, not a JSON %s", jsonKind(typeErr.Type), typeErr.Value)
		}
		return fmt.Sprintf("field %q must be a JSON %s, not a JSON %s", typeErr.Field, jsonKind(typeErr.Type), typeErr.Value)
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("syntax error at byte %d", syntaxErr.Offset)
	case errors.Is(err, io.EOF):
		return "the body is empty"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON ends early"
	}
	return strings.TrimPrefix(err.Error(), "json: ") // e.g. unknown field "x"
}

// jsonKind names the JSON type that decodes into t.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "number"
}

// MaxNodeEventBytes bounds one encoded node event: a channel-set report
// lists every open channel of a broker node.
const MaxNodeEventBytes = 64 << 20

// DecodeNodeEvent parses and validates a broker node's report about itself.
func DecodeNodeEvent(data []byte) (NodeEvent, error) {
	var n NodeEvent
	if len(data) > MaxNodeEventBytes {
		return n, Errorf(EINVALID, "node report is %d bytes; at most %d are allowed", len(data), MaxNodeEventBytes)
	}
	if err := json.Unmarshal(data, &n); err != nil {
		return n, Errorf(EINVALID, "node report is not valid JSON: %s", JSONProblem(err))
	}
	if err := n.Validate(); err != nil {
		return n, err
	}
	return n, nil
}
