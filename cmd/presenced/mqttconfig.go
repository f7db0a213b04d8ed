package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/presenced/presenced/mqttbroker"
	"github.com/presenced/presenced/mqttbroker/auth"
)

// mqttConfig is the broker's admission, authorization and limits.
type mqttConfig struct {
	PasswordFile   string
	ACLFile        string
	AccessKeysFile string

	// AlibabaInstanceIDs is --mqtt-alibaba-instance-id as given,
	// comma-separated: a string, so that mqttConfig stays comparable.
	AlibabaInstanceIDs string

	MaxConnections int
	MaxPacketKiB   int
	Inflight       int
	MaxQueued      int
	SessionExpiry  time.Duration
	MaxKeepalive   time.Duration
	MaxTopicLength int
	MaxTopicLevels int
	MaxSubs        int
	MaxSubsTotal   int

	// Memory budgets (mqttbroker.Config has what each does when reached).
	MaxRetained           int
	MaxRetainedMiB        int
	MaxPersistentSessions int
	MaxSessionMiB         int
	MaxOutboundKiB        int
	MaxOutboundTotalMiB   int
	MaxInboundTotalMiB    int
	MaxWillTotalMiB       int

	// PresenceTopics is --mqtt-presence-topics (mqttbroker.Config).
	PresenceTopics bool

	// Persistence and PersistenceMaxMiB are --mqtt-persistence and
	// --mqtt-persistence-max-mib (see openBrokerPersistence).
	Persistence       bool
	PersistenceMaxMiB int
}

func registerMQTTFlags(f *envFlags, c *mqttConfig) {
	f.String(&c.PasswordFile, "mqtt-password-file", "", "file of user:bcrypt-hash lines; clients with a user name must match one")
	f.String(&c.ACLFile, "mqtt-acl-file", "", "mosquitto-style ACL file (user/client/topic/pattern lines); empty allows every topic")
	f.String(&c.AccessKeysFile, "mqtt-access-keys-file", "", "file of AccessKey:SecretKey lines for Alibaba's signature mode: user name AccessKey with password Base64(HMAC-SHA1(SecretKey, GroupId)), or Signature|AccessKey|InstanceId with Base64(HMAC-SHA1(SecretKey, ClientId))")
	f.String(&c.AlibabaInstanceIDs, "mqtt-alibaba-instance-id", "", "Alibaba instance ids (comma-separated) that Signature|AccessKey|InstanceId user names may name; empty refuses that form")
	f.Int(&c.MaxConnections, "mqtt-max-connections", 0, "most MQTT connections held at once; more are closed at once (0: the open-file limit less an eighth, at least 256, for HTTP, SSE and the database)")
	f.Int(&c.MaxPacketKiB, "mqtt-max-packet-kib", 256, "largest MQTT packet accepted, in KiB; checked before allocating")
	f.Int(&c.Inflight, "mqtt-inflight", 32, "QoS 1/2 messages in flight per client")
	f.Int(&c.MaxQueued, "mqtt-max-queued", 1000, "QoS 1/2 messages queued per offline persistent session (oldest dropped)")
	f.Duration(&c.SessionExpiry, "mqtt-session-expiry", 24*time.Hour, "how long an abandoned persistent session is kept")
	f.Duration(&c.MaxKeepalive, "mqtt-max-keepalive", 0, "longest keepalive of an MQTT 5.0 client, whole seconds up to 65535s: a longer one, or none, is replaced by it (CONNACK Server Keep Alive) and the client timed out by it; 3.1.1 clients keep their own (0: no maximum)")
	f.Int(&c.MaxTopicLength, "mqtt-max-topic-length", 1024, "longest topic name or filter, in bytes")
	f.Int(&c.MaxTopicLevels, "mqtt-max-topic-levels", 128, "most levels in a topic name or filter")
	f.Int(&c.MaxSubs, "mqtt-max-subscriptions", 1000, "most subscriptions per client")
	f.Int(&c.MaxSubsTotal, "mqtt-max-subscriptions-total", 1_000_000, "most subscriptions of all clients together; a filter past it gets SUBACK 0x80 (v5: 0x97)")
	f.Int(&c.MaxRetained, "mqtt-max-retained", 100_000, "most retained messages stored; beyond, new retained topics are not stored (the message is still delivered)")
	f.Int(&c.MaxRetainedMiB, "mqtt-max-retained-mib", 64, "most memory of retained messages, in MiB (topic, payload and overhead)")
	f.Int(&c.MaxPersistentSessions, "mqtt-max-persistent-sessions", 100_000, "most sessions with cleanSession=0; a CONNECT needing one more gets CONNACK 0x03")
	f.Int(&c.MaxSessionMiB, "mqtt-max-session-mib", 128, "most memory of QoS 1/2 messages queued or in flight for all sessions, in MiB; beyond, the oldest queued message of any session is dropped")
	f.Int(&c.MaxOutboundKiB, "mqtt-max-outbound-kib", 1024, "most bytes waiting to be written to one client, in KiB; a client that lets more pile up is disconnected (reason slow_consumer); QoS 1/2 are bounded by --mqtt-inflight instead")
	f.Int(&c.MaxOutboundTotalMiB, "mqtt-max-outbound-total-mib", 64, "most bytes waiting to be written to all clients, in MiB; beyond, clients that are behind lose QoS 0 messages or are disconnected")
	f.Int(&c.MaxInboundTotalMiB, "mqtt-max-inbound-total-mib", 64, "most bytes of packets larger than 4 KiB being read from all clients at once, in MiB (at least two of --mqtt-max-packet-kib); a client whose packet would pass it is disconnected (reason slow_consumer)")
	f.Int(&c.MaxWillTotalMiB, "mqtt-max-will-total-mib", 64, "most bytes of wills held, of connected clients and delayed, in MiB (at least two of --mqtt-max-packet-kib); a CONNECT whose will would pass it gets CONNACK 0x03 (v5: 0x97)")
	f.Bool(&c.Persistence, "mqtt-persistence", true, "keep persistent sessions and retained messages across restarts, in --data-dir/broker (snapshot + journal, fsynced before PUBACK, SUBACK and CONNACK); false keeps them in memory only")
	f.Int(&c.PersistenceMaxMiB, "mqtt-persistence-max-mib", 1024, "disk bound of --mqtt-persistence, in MiB; the state is kept within a third of it; beyond, a QoS 1/2 PUBLISH that would be queued or retained is refused (v5 PUBACK/PUBREC 0x97; a 3.1.1 publisher is disconnected), and new sessions and subscriptions are kept in memory only (counted)")
	f.Bool(&c.PresenceTopics, "mqtt-presence-topics", false, "publish each client's connect and close as JSON on $SYS/presence/{clientId}/connected and .../disconnected (QoS 0, not retained); readable by clients the --mqtt-acl-file grants, by every client without one")
}

func (c mqttConfig) validate() error {
	var errs []error
	if c.MaxConnections < 0 {
		errs = append(errs, fmt.Errorf("--mqtt-max-connections must not be negative, not %d", c.MaxConnections))
	}
	if c.MaxPacketKiB < 1 || c.MaxPacketKiB > 256*1024 {
		errs = append(errs, fmt.Errorf("--mqtt-max-packet-kib must be within 1..262144 (256 MiB, MQTT's own limit), not %d", c.MaxPacketKiB))
	}
	if c.Inflight < 1 || c.Inflight > 65535 {
		errs = append(errs, fmt.Errorf("--mqtt-inflight must be within 1..65535, not %d", c.Inflight))
	}
	if c.MaxQueued < 0 || c.MaxTopicLength < 1 || c.MaxTopicLevels < 1 || c.MaxSubs < 1 || c.MaxSubsTotal < 1 {
		errs = append(errs, errors.New("--mqtt-max-queued must not be negative, and --mqtt-max-topic-length, --mqtt-max-topic-levels, --mqtt-max-subscriptions and --mqtt-max-subscriptions-total must be positive"))
	}
	for _, id := range c.alibabaInstanceIDs() {
		if strings.Contains(id, "|") {
			errs = append(errs, fmt.Errorf("--mqtt-alibaba-instance-id: %q contains '|', which separates the parts of the user name", id))
		}
	}
	if c.AlibabaInstanceIDs != "" && c.AccessKeysFile == "" {
		errs = append(errs, errors.New("--mqtt-alibaba-instance-id needs --mqtt-access-keys-file (the AccessKey:SecretKey pairs it checks signatures with)"))
	}
	if c.MaxKeepalive < 0 || c.MaxKeepalive > 65535*time.Second || c.MaxKeepalive%time.Second != 0 {
		errs = append(errs, fmt.Errorf("--mqtt-max-keepalive must be 0 or whole seconds within 1s..65535s (MQTT's Server Keep Alive), not %s", c.MaxKeepalive))
	}
	if c.PersistenceMaxMiB < 1 {
		errs = append(errs, fmt.Errorf("--mqtt-persistence-max-mib must be positive, not %d", c.PersistenceMaxMiB))
	}
	if c.MaxRetained < 1 || c.MaxRetainedMiB < 1 || c.MaxPersistentSessions < 1 || c.MaxSessionMiB < 1 || c.MaxOutboundKiB < 1 || c.MaxOutboundTotalMiB < 1 || c.MaxInboundTotalMiB < 1 || c.MaxWillTotalMiB < 1 {
		errs = append(errs, errors.New("--mqtt-max-retained, --mqtt-max-retained-mib, --mqtt-max-persistent-sessions, --mqtt-max-session-mib, --mqtt-max-outbound-kib, --mqtt-max-outbound-total-mib, --mqtt-max-inbound-total-mib and --mqtt-max-will-total-mib must be positive"))
	}
	return errors.Join(errs...)
}

// alibabaInstanceIDs splits --mqtt-alibaba-instance-id (splitList).
func (c mqttConfig) alibabaInstanceIDs() []string { return splitList(c.AlibabaInstanceIDs) }

// newBrokerConfig builds the broker's configuration from the flags, loading
// the credential and ACL files (their errors name file and line, never a
// secret).
func newBrokerConfig(cfg config, epoch string, listener net.Addr, hooks testHooks, log *slog.Logger) (mqttbroker.Config, error) {
	m := cfg.MQTT
	var authenticators []mqttbroker.Authenticator
	if m.PasswordFile != "" {
		passwords, err := auth.LoadPasswordFile(m.PasswordFile)
		if err != nil {
			return mqttbroker.Config{}, fmt.Errorf("load --mqtt-password-file: %w", err)
		}
		authenticators = append(authenticators, passwords)
	}
	if m.AccessKeysFile != "" {
		instanceIDs := m.alibabaInstanceIDs()
		signature, err := auth.LoadAccessKeys(m.AccessKeysFile, instanceIDs)
		if err != nil {
			return mqttbroker.Config{}, fmt.Errorf("load --mqtt-access-keys-file: %w", err)
		}
		if len(instanceIDs) == 0 {
			log.Info("Alibaba signature auth: Signature|AccessKey|InstanceId user names are refused (CONNACK 0x04) until --mqtt-alibaba-instance-id names the instance; bare AccessKey user names are accepted")
		} else {
			log.Info("Alibaba signature auth: Signature|AccessKey|InstanceId user names accepted for these instances", "instance_ids", instanceIDs)
		}
		authenticators = append(authenticators, signature)
	}
	bc := mqttbroker.Config{
		Node:                      cfg.Node,
		Epoch:                     epoch,
		ConnectTimeout:            cfg.ConnectTimeout,
		MaxPacketSize:             m.MaxPacketKiB << 10,
		AllowAnonymous:            allowAnonymous(cfg.AllowAnonymous, listener),
		MaxConnections:            connectionLimit(m.MaxConnections, "mqtt", connectionsForFileLimit, log),
		InflightWindow:            m.Inflight,
		MaxQueuedMessages:         m.MaxQueued,
		SessionExpiry:             m.SessionExpiry,
		MaxKeepalive:              m.MaxKeepalive,
		MaxTopicLength:            m.MaxTopicLength,
		MaxTopicLevels:            m.MaxTopicLevels,
		MaxSubscriptionsPerClient: m.MaxSubs,
		MaxSubscriptionsTotal:     m.MaxSubsTotal,
		MaxRetainedMessages:       m.MaxRetained,
		MaxRetainedBytes:          int64(m.MaxRetainedMiB) << 20,
		MaxPersistentSessions:     m.MaxPersistentSessions,
		MaxSessionBytes:           int64(m.MaxSessionMiB) << 20,
		MaxOutboundBytes:          m.MaxOutboundKiB << 10,
		MaxOutboundBytesTotal:     int64(m.MaxOutboundTotalMiB) << 20,
		MaxInboundBytesTotal:      int64(m.MaxInboundTotalMiB) << 20,
		MaxWillBytesTotal:         int64(m.MaxWillTotalMiB) << 20,
		PresenceTopics:            m.PresenceTopics,
		Logger:                    log.With("component", "mqtt"),
		Now:                       hooks.now,
		DropTCPClean:              hooks.dropTCPClean,
	}
	switch len(authenticators) {
	case 0:
	case 1:
		bc.Authenticator = authenticators[0]
	default:
		bc.Authenticator = auth.Any(authenticators...)
	}
	if m.ACLFile != "" {
		acl, err := auth.LoadACLFile(m.ACLFile)
		if err != nil {
			return mqttbroker.Config{}, fmt.Errorf("load --mqtt-acl-file: %w", err)
		}
		bc.Authorizer = acl
	}
	if !bc.AllowAnonymous && bc.Authenticator == nil {
		log.Warn("MQTT clients without credentials are refused (--allow-anonymous) and no credentials are configured: every client will be refused; set --mqtt-password-file, --mqtt-access-keys-file or --allow-anonymous=true")
	}
	return bc, nil
}
