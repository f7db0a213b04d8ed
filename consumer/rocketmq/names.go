package rocketmq

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"

	"github.com/presenced/presenced/presence"
)

// ResolveNameServers turns "host:port" name server addresses (a list, or
// entries holding several separated by ';' or ',') into the "ip:port"
// form rocketmq-client-go insists on. A host name resolving to several
// addresses contributes all of them. "http://host:port" addresses (Alibaba
// Cloud instance endpoints) are passed through: the client accepts those.
func ResolveNameServers(ctx context.Context, addrs []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, entry := range addrs {
		for _, addr := range strings.FieldsFunc(entry, func(r rune) bool { return r == ';' || r == ',' || r == ' ' }) {
			if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
				// Alibaba Cloud instance endpoints: the client strips
				// the scheme and dials the host name itself.
				if !seen[addr] {
					seen[addr] = true
					out = append(out, addr)
				}
				continue
			}
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, fmt.Errorf("resolve name server %q: want host:port: %w", addr, err)
			}
			ips := []string{host}
			if net.ParseIP(host) == nil {
				found, err := net.DefaultResolver.LookupHost(ctx, host)
				if err != nil {
					return nil, fmt.Errorf("resolve name server %q: rocketmq-client-go needs ip:port and the host does not resolve: %w", addr, err)
				}
				ips = found
			}
			for _, ip := range ips {
				hostPort := net.JoinHostPort(ip, port)
				if !seen[hostPort] {
					seen[hostPort] = true
					out = append(out, hostPort)
				}
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("resolve name servers: no address given")
	}
	return out, nil
}

// uniqueInstanceName returns an instance name no other client in this or
// another process on the host uses: the client id is "ip@instanceName",
// and two clients sharing one would share connections and rebalance as one.
func uniqueInstanceName(role string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("presenced-%s-%d-%s", role, os.Getpid(), hex.EncodeToString(b[:]))
}

// validName matches RocketMQ topic and group names.
var validName = regexp.MustCompile(`^[%|a-zA-Z0-9_-]{1,127}$`)

// checkName reports a topic or group name RocketMQ would refuse.
func checkName(what, name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("%s %q is not a valid RocketMQ name (1-127 of letters, digits, %%, |, _ and -)", what, name)
	}
	return nil
}

// GroupTopic returns Alibaba's per-group status topic for clientID,
// "<GroupId>_MQTT", or "" when the client id has no group or the group
// cannot be part of a topic name.
func GroupTopic(clientID string) string {
	group := presence.GroupID(clientID)
	if group == "" {
		return ""
	}
	topic := group + "_MQTT"
	if !validName.MatchString(topic) {
		return ""
	}
	return topic
}
