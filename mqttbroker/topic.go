package mqttbroker

import "strings"

// checkTopicName validates the Topic Name of a PUBLISH or Will: at least one
// character [MQTT-4.7.3-1] and no wildcards [MQTT-3.3.2-2].
func checkTopicName(topic string) error {
	if topic == "" {
		return malformed("MQTT-4.7.3-1", "empty topic name")
	}
	if hasWildcard(topic) {
		return malformed("MQTT-3.3.2-2", "wildcard in topic name %q", truncateForLog(topic))
	}
	return nil
}

// checkTopicFilter validates a Topic Filter: at least one character
// [MQTT-4.7.3-1]; '#' only alone as the last level [MQTT-4.7.1-2]; '+' only
// as a whole level [MQTT-4.7.1-3].
func checkTopicFilter(filter string) error {
	if filter == "" {
		return malformed("MQTT-4.7.3-1", "empty topic filter")
	}
	rest := filter
	for {
		level, tail, more := strings.Cut(rest, "/")
		if strings.Contains(level, "#") && (level != "#" || more) {
			return malformed("MQTT-4.7.1-2", "'#' not alone at the end of filter %q", truncateForLog(filter))
		}
		if strings.Contains(level, "+") && level != "+" {
			return malformed("MQTT-4.7.1-3", "'+' not alone in a level of filter %q", truncateForLog(filter))
		}
		if !more {
			return nil
		}
		rest = tail
	}
}

// topicLevels counts the levels of a topic name or filter.
func topicLevels(topic string) int { return strings.Count(topic, "/") + 1 }

// topicMatches reports whether a topic name matches a filter [MQTT-4.7].
// A filter starting with a wildcard does not match a topic starting with '$'
// [MQTT-4.7.2-1].
func topicMatches(filter, topic string) bool {
	if topic != "" && topic[0] == '$' && filter != "" && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" {
			return true // '#' also matches the parent level [MQTT-4.7.1-2]
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		if !fmore || !tmore {
			// Both must end together, except "a/#" matches "a".
			return fmore == tmore || (!tmore && frest == "#")
		}
		filter, topic = frest, trest
	}
}

// truncateForLog shortens attacker-controlled strings in messages.
func truncateForLog(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:64] + "…"
}
