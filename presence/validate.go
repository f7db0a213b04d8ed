package presence

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of the event contract.
const (
	MaxClientIDBytes  = 128 // Alibaba allows 64; MQTT allows 65535; 128 leaves room for group prefixes
	MaxChannelIDBytes = 64
	MaxReasonBytes    = 64
	MaxNodeBytes      = 128
	MaxEpochBytes     = 64
	MaxUsernameBytes  = 256
	MaxClientIPBytes  = 64
)

// ValidateClientID checks a client id: valid UTF-8, 1–128 bytes, no control
// characters, and no MQTT wildcards '+' or '#' (they would make the client id
// unusable in topic-based ACLs and in the per-client topics of many fleets).
func ValidateClientID(clientID string) error {
	switch {
	case clientID == "":
		return FieldErrorf("clientId", "must not be empty")
	case len(clientID) > MaxClientIDBytes:
		return FieldErrorf("clientId", "is %d bytes long; at most %d are allowed", len(clientID), MaxClientIDBytes)
	case !utf8.ValidString(clientID):
		return FieldErrorf("clientId", "is not valid UTF-8")
	}
	for i, r := range clientID {
		switch {
		case unicode.IsControl(r):
			return FieldErrorf("clientId", "contains control character U+%04X at byte %d", r, i)
		case r == '+' || r == '#':
			return FieldErrorf("clientId", "contains MQTT wildcard %q at byte %d", r, i)
		}
	}
	return nil
}

// ValidateChannelID checks a channel id: 1–64 printable ASCII characters.
// presenced's broker uses 32 lowercase hex digits; other brokers' ids are
// accepted as long as they are printable and short.
func ValidateChannelID(channelID string) error {
	switch {
	case channelID == "":
		return FieldErrorf("channelId", "must not be empty")
	case len(channelID) > MaxChannelIDBytes:
		return FieldErrorf("channelId", "is %d bytes long; at most %d are allowed", len(channelID), MaxChannelIDBytes)
	}
	for i := 0; i < len(channelID); i++ {
		if c := channelID[i]; c <= ' ' || c > '~' {
			return FieldErrorf("channelId", "contains byte 0x%02X at %d; only printable ASCII is allowed", c, i)
		}
	}
	return nil
}

// Validate checks every field of e and returns all problems found, as
// Problems, or nil.
func (e Event) Validate() error {
	var problems Problems
	problems.Add(ValidateClientID(e.ClientID))
	problems.Add(ValidateChannelID(e.ChannelID))
	if !e.Type.Valid() {
		if e.Type == "" {
			problems.Add(FieldErrorf("eventType", "is missing; must be one of connect, disconnect, tcpclean"))
		} else {
			problems.Add(FieldErrorf("eventType", "%q is not one of connect, disconnect, tcpclean", Truncate(string(e.Type), 32)))
		}
	}
	if e.Time <= 0 {
		problems.Add(FieldErrorf("time", "is missing or not positive; must be milliseconds since the Unix epoch"))
	}
	problems.Add(validateClientIP(e.ClientIP))
	problems.Add(validateText("node", e.Node, MaxNodeBytes))
	problems.Add(validateText("epoch", e.Epoch, MaxEpochBytes))
	problems.Add(validateText("reason", string(e.Reason), MaxReasonBytes))
	problems.Add(validateText("username", e.Username, MaxUsernameBytes))
	problems.Add(validateTakeoverBy(e))
	if e.Keepalive < 0 || e.Keepalive > 65535 {
		problems.Add(FieldErrorf("keepalive", "%d is outside 0..65535", e.Keepalive))
	}
	switch e.ProtocolLevel {
	case 0, 3, 4, 5:
	default:
		problems.Add(FieldErrorf("protocolLevel", "%d is not an MQTT protocol level (3, 4 or 5)", e.ProtocolLevel))
	}
	if e.ReasonCode != nil {
		if *e.ReasonCode < 0 || *e.ReasonCode > 255 {
			problems.Add(FieldErrorf("reasonCode", "%d is outside 0..255", *e.ReasonCode))
		} else if e.Type == EventConnect {
			problems.Add(FieldErrorf("reasonCode", "is only allowed on a disconnect or tcpclean"))
		}
	}
	return problems.Err()
}

// validateTakeoverBy checks the successor of a takeover: only a tcpclean
// with reason takeover names one, and never its own channel (the store would
// wait for itself).
func validateTakeoverBy(e Event) error {
	if e.TakeoverBy == "" {
		return nil
	}
	if e.Type != EventTCPClean || e.Reason != ReasonTakeover {
		return FieldErrorf("takeoverBy", "is only allowed on a tcpclean with reason %q", ReasonTakeover)
	}
	if e.TakeoverBy == e.ChannelID {
		return FieldErrorf("takeoverBy", "names the event's own channel")
	}
	if err := ValidateChannelID(e.TakeoverBy); err != nil {
		return FieldProblem("takeoverBy", err)
	}
	return nil
}

// validateClientIP accepts "" (some sources omit it), "ip:port" and a bare IP.
func validateClientIP(clientIP string) error {
	if clientIP == "" {
		return nil
	}
	if len(clientIP) > MaxClientIPBytes {
		return FieldErrorf("clientIp", "is %d bytes long; at most %d are allowed", len(clientIP), MaxClientIPBytes)
	}
	if net.ParseIP(clientIP) != nil {
		return nil
	}
	host, port, err := net.SplitHostPort(clientIP)
	if err != nil || net.ParseIP(host) == nil {
		return FieldErrorf("clientIp", "%q is not ip:port", Truncate(clientIP, 64))
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return FieldErrorf("clientIp", "port %q is not a number in 0..65535", port)
	}
	return nil
}

// validateText checks an optional free-text field: valid UTF-8, no control
// characters, bounded length.
func validateText(field, value string, maxBytes int) error {
	if len(value) > maxBytes {
		return FieldErrorf(field, "is %d bytes long; at most %d are allowed", len(value), maxBytes)
	}
	if !utf8.ValidString(value) {
		return FieldErrorf(field, "is not valid UTF-8")
	}
	if i := strings.IndexFunc(value, unicode.IsControl); i >= 0 {
		return FieldErrorf(field, "contains a control character at byte %d", i)
	}
	return nil
}

// Truncate cuts s to its first n bytes, marked with "…", for messages and
// logs that quote what a peer sent.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%s…", s[:n])
}
