package presence

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateClientID(t *testing.T) {
	tests := []struct {
		name, clientID, wantField, wantMessage string
	}{
		{"alibaba style", "GID_demo@@@device-1", "", ""},
		{"unicode", "капибара-7", "", ""},
		{"128 bytes", strings.Repeat("a", 128), "", ""},
		{"empty", "", "clientId", "must not be empty"},
		{"129 bytes", strings.Repeat("a", 129), "clientId", "129 bytes"},
		{"invalid utf8", "dev\xff", "clientId", "not valid UTF-8"},
		{"nul", "dev\x00ice", "clientId", "control character U+0000"},
		{"newline", "dev\nice", "clientId", "control character U+000A"},
		{"plus", "dev+1", "clientId", `wildcard '+'`},
		{"hash", "dev#1", "clientId", `wildcard '#'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateClientID(tt.clientID)
			if tt.wantMessage == "" {
				if err != nil {
					t.Fatalf("ValidateClientID(%q) = %v, want nil", tt.clientID, err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("ValidateClientID(%q) = %v, want *Error", tt.clientID, err)
			}
			if e.Code != EINVALID || e.Field != tt.wantField || !strings.Contains(e.Message, tt.wantMessage) {
				t.Fatalf("ValidateClientID(%q) = {%s %s %q}, want field %s message containing %q", tt.clientID, e.Code, e.Field, e.Message, tt.wantField, tt.wantMessage)
			}
		})
	}
}

func validEvent() Event {
	return Event{ClientID: "GID_a@@@d1", ChannelID: "9f1c0a7e3b2d4c5f8e9a0b1c2d3e4f50", Type: EventConnect, Time: 1732240000123, ClientIP: "203.0.113.7:52311"}
}

func TestEventValidateListsEveryProblem(t *testing.T) {
	e := Event{ClientID: "a+b", ChannelID: "", Type: "bogus", Time: 0, ClientIP: "nonsense", Keepalive: 70000}
	err := e.Validate()
	var problems Problems
	if !errors.As(err, &problems) {
		t.Fatalf("Validate() = %v, want Problems", err)
	}
	got := map[string]bool{}
	for _, p := range problems {
		got[p.Field] = true
	}
	for _, field := range []string{"clientId", "channelId", "eventType", "time", "clientIp", "keepalive"} {
		if !got[field] {
			t.Errorf("no problem reported for %s; got %v", field, problems)
		}
	}
	if ErrorCode(err) != EINVALID {
		t.Errorf("ErrorCode = %q, want %q", ErrorCode(err), EINVALID)
	}
}

func TestEventValidateAcceptsAlibabaFiveKeys(t *testing.T) {
	e := validEvent()
	if err := e.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	e.ClientIP = "2001:db8::1"
	if err := e.Validate(); err != nil {
		t.Fatalf("bare IPv6 address: %v", err)
	}
	e.ClientIP = "[2001:db8::1]:1883"
	if err := e.Validate(); err != nil {
		t.Fatalf("bracketed IPv6 with port: %v", err)
	}
}

func TestGroupID(t *testing.T) {
	for in, want := range map[string]string{"GID_a@@@d1": "GID_a", "plain": "", "@@@x": "", "G@@@a@@@b": "G"} {
		if got := GroupID(in); got != want {
			t.Errorf("GroupID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEventValidateProtocolLevelAndReasonCode(t *testing.T) {
	code := func(c int) *int { return &c }
	for _, tc := range []struct {
		name      string
		edit      func(*Event)
		wantField string // "" = valid
	}{
		{"v5 connect", func(e *Event) { e.ProtocolLevel = 5 }, ""},
		{"3.1 connect", func(e *Event) { e.ProtocolLevel = 3 }, ""},
		{"level 6", func(e *Event) { e.ProtocolLevel = 6 }, "protocolLevel"},
		{"tcpclean with 0x8E", func(e *Event) { e.Type, e.ReasonCode = EventTCPClean, code(0x8E) }, ""},
		{"disconnect with 0x00", func(e *Event) { e.Type, e.ReasonCode = EventDisconnect, code(0) }, ""},
		{"code 256", func(e *Event) { e.Type, e.ReasonCode = EventTCPClean, code(256) }, "reasonCode"},
		{"code on a connect", func(e *Event) { e.ReasonCode = code(0) }, "reasonCode"},
	} {
		e := validEvent()
		tc.edit(&e)
		err := e.Validate()
		var problems Problems
		errors.As(err, &problems)
		switch {
		case tc.wantField == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.wantField != "" && (len(problems) != 1 || problems[0].Field != tc.wantField):
			t.Errorf("%s: %v, want one problem with %s", tc.name, err, tc.wantField)
		}
	}
}
