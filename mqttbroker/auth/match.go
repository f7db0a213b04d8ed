package auth

import (
	"errors"
	"strings"
)

// validFilter checks an ACL topic filter with the MQTT filter rules
// [MQTT-4.7.1-2], [MQTT-4.7.1-3].
func validFilter(filter string) error {
	if filter == "" {
		return errNoFilter
	}
	levels := strings.Split(filter, "/")
	for i, level := range levels {
		if strings.Contains(level, "#") && (level != "#" || i != len(levels)-1) {
			return errors.New("'#' must be alone in the last level of a filter")
		}
		if strings.Contains(level, "+") && level != "+" {
			return errors.New("'+' must fill a whole filter level")
		}
	}
	return nil
}

// matches reports whether topic matches filter. As in the broker, filters
// beginning with a wildcard do not match '$' topics [MQTT-4.7.2-1].
func matches(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	f, t := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, level := range f {
		if level == "#" {
			return true
		}
		if i >= len(t) || (level != "+" && level != t[i]) {
			return false
		}
	}
	return len(f) == len(t)
}

// covers reports whether every topic that sub matches is also matched by
// rule: a subscription is allowed only within what the rule grants.
func covers(rule, sub string) bool {
	if strings.HasPrefix(sub, "$") != strings.HasPrefix(rule, "$") &&
		(strings.HasPrefix(rule, "+") || strings.HasPrefix(rule, "#")) {
		return false
	}
	r, s := strings.Split(rule, "/"), strings.Split(sub, "/")
	for i, level := range r {
		if level == "#" {
			return true
		}
		if i >= len(s) {
			return false
		}
		switch s[i] {
		case "#":
			return false // sub reaches deeper than a non-'#' rule level
		case "+":
			if level != "+" {
				return false
			}
		default:
			if level != "+" && level != s[i] {
				return false
			}
		}
	}
	return len(r) == len(s)
}
