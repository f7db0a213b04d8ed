package auth

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// access is a right an ACL rule grants.
type access uint8

const (
	accessRead  access = 1 << iota // subscribe
	accessWrite                    // publish
)

// aclRule grants access to the topics a filter matches.
type aclRule struct {
	access access
	filter string // for pattern rules, with %u and %c still to substitute
}

// ACL decides publish and subscribe rights from rules in the mosquitto
// acl_file style:
//
//	# rules before any "user" or "client" line apply to anonymous clients
//	topic read public/#
//	user alice                       # rules for user name alice
//	topic readwrite sensors/#
//	client GID_a@@@dev-1             # rules for one client id
//	topic write devices/dev-1/#
//	pattern write devices/%c/status  # for every client: %c = client id, %u = user name
//	pattern read users/%u/#
//
// Access is read (subscribe), write (publish) or readwrite. A client may do
// what any rule of its user, its client id, or any pattern allows; nothing
// else. It is an mqttbroker.Authorizer.
type ACL struct {
	anonymous []aclRule
	users     map[string][]aclRule
	clients   map[string][]aclRule
	patterns  []aclRule
}

// LoadACLFile reads an ACL file.
func LoadACLFile(path string) (*ACL, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open acl file: %w", err)
	}
	defer f.Close()
	return ParseACL(f, path)
}

// ParseACL parses ACL rules from r; name is used in error messages.
func ParseACL(r io.Reader, name string) (*ACL, error) {
	a := &ACL{users: make(map[string][]aclRule), clients: make(map[string][]aclRule)}
	section, owner := "", "" // "" (anonymous), "user" or "client", and whose
	err := eachLine(r, name, func(line string) error {
		keyword, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch keyword {
		case "user", "client":
			if rest == "" {
				return fmt.Errorf("%q needs a name", keyword)
			}
			section, owner = keyword, rest
			return nil
		case "topic", "pattern":
			rule, err := parseRule(rest)
			if err != nil {
				return err
			}
			switch {
			case keyword == "pattern":
				a.patterns = append(a.patterns, rule)
			case section == "user":
				a.users[owner] = append(a.users[owner], rule)
			case section == "client":
				a.clients[owner] = append(a.clients[owner], rule)
			default:
				a.anonymous = append(a.anonymous, rule)
			}
			return nil
		}
		return fmt.Errorf("unknown keyword %q; want user, client, topic or pattern", truncate(keyword))
	})
	if err != nil {
		return nil, fmt.Errorf("parse acl file: %w", err)
	}
	return a, nil
}

var errNoFilter = errors.New("missing topic filter")

// parseRule parses "[access] filter"; access defaults to readwrite as in
// mosquitto.
func parseRule(s string) (aclRule, error) {
	fields := strings.Fields(s)
	rule := aclRule{access: accessRead | accessWrite}
	switch len(fields) {
	case 0:
		return rule, errNoFilter
	case 1:
		rule.filter = fields[0]
	case 2:
		switch fields[0] {
		case "read":
			rule.access = accessRead
		case "write":
			rule.access = accessWrite
		case "readwrite":
		default:
			return rule, fmt.Errorf("unknown access %q; want read, write or readwrite", truncate(fields[0]))
		}
		rule.filter = fields[1]
	default:
		return rule, fmt.Errorf("want \"[read|write|readwrite] filter\", got %d fields (filters cannot contain spaces)", len(fields))
	}
	if err := validFilter(rule.filter); err != nil {
		return rule, err
	}
	return rule, nil
}

// CanPublish reports whether a rule grants write access to topic.
func (a *ACL) CanPublish(clientID, username, topic string) bool {
	return a.allowed(clientID, username, accessWrite, func(filter string) bool { return matches(filter, topic) })
}

// CanSubscribe reports whether a rule grants read access to every topic
// filter can match.
func (a *ACL) CanSubscribe(clientID, username, filter string) bool {
	return a.allowed(clientID, username, accessRead, func(rule string) bool { return covers(rule, filter) })
}

func (a *ACL) allowed(clientID, username string, want access, ok func(filter string) bool) bool {
	check := func(rules []aclRule) bool {
		for _, r := range rules {
			if r.access&want != 0 && ok(r.filter) {
				return true
			}
		}
		return false
	}
	if username == "" {
		if check(a.anonymous) {
			return true
		}
	} else if check(a.users[username]) {
		return true
	}
	if check(a.clients[clientID]) {
		return true
	}
	for _, r := range a.patterns {
		if r.access&want == 0 {
			continue
		}
		filter, usable := substitute(r.filter, clientID, username)
		if usable && ok(filter) {
			return true
		}
	}
	return false
}

// substitute fills %c and %u into a pattern. A value containing '/', '+'
// or '#' would widen the rule beyond one level, and an empty user name
// would match other users' topics, so such a pattern is not applied.
func substitute(filter, clientID, username string) (string, bool) {
	if strings.Contains(filter, "%c") {
		if clientID == "" || strings.ContainsAny(clientID, "/+#") {
			return "", false
		}
		filter = strings.ReplaceAll(filter, "%c", clientID)
	}
	if strings.Contains(filter, "%u") {
		if username == "" || strings.ContainsAny(username, "/+#") {
			return "", false
		}
		filter = strings.ReplaceAll(filter, "%u", username)
	}
	return filter, true
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}
