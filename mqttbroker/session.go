package mqttbroker

import (
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/presenced/presenced/mqttbroker/persist"
)

// message is an application message being routed. It is immutable once
// built and shared by every recipient.
type message struct {
	topic   string
	payload []byte
	qos     byte
	retain  bool
	props   *properties // MQTT 5.0 properties forwarded to v5 subscribers; nil: none

	once  sync.Once
	wire0 *sharedWire // the QoS 0, non-retained encoding, shared by the fan-out
	// onceV5 and wire0v5: the same for v5 subscribers (with properties).
	onceV5  sync.Once
	wire0v5 *sharedWire

	holders atomic.Int32 // deliveries holding it queued or in flight (sessionBudget)
}

// sharedWire is an encoding written to many connections, with the number
// of connections it waits for (see chargeOutbound). Connections hold it,
// not the message, so that a queued packet does not pin the payload too.
type sharedWire struct {
	wire    []byte
	writers atomic.Int32
}

// qos0Wire returns the encoding sent to QoS 0 recipients of a routed
// message: retain cleared [MQTT-3.3.1-9], encoded once for all of them.
func (m *message) qos0Wire() *sharedWire {
	m.once.Do(func() {
		m.wire0 = &sharedWire{wire: (&publishPacket{Topic: m.topic, Payload: m.payload}).appendTo(nil)}
	})
	return m.wire0
}

// qos0WireV5 is qos0Wire for MQTT 5.0 recipients.
func (m *message) qos0WireV5() *sharedWire {
	m.onceV5.Do(func() {
		m.wire0v5 = &sharedWire{wire: (&publishPacket{Topic: m.topic, Payload: m.payload, V5: true, Props: m.props}).appendTo(nil)}
	})
	return m.wire0v5
}

// delivery is a message on its way to one session, at the QoS granted to it.
type delivery struct {
	msg    *message
	qos    byte
	retain bool   // retained messages sent on subscribe [MQTT-3.3.1-8], and v5 Retain As Published [MQTT-3.3.1-12]
	seq    uint64 // while queued: its place in the order of all queues (sessionBudget)
}

// inflightMessage is a QoS 1 or 2 delivery sent and not yet acknowledged.
type inflightMessage struct {
	delivery
	id       uint16
	released bool // QoS 2: PUBREC received and PUBREL sent; waiting for PUBCOMP
}

// session is the state of one client id [MQTT-3.1.2.4]: subscriptions,
// QoS 1 and 2 messages in flight or queued in either direction. A clean
// session lives as long as its connection; a persistent one outlives it.
type session struct {
	clientID string
	clean    bool

	mu sync.Mutex
	// owner is the connection that claimed the session (see attach); conn
	// is where messages go, set once owner's CONNACK is out (see resume).
	// Both are nil while the client is offline.
	owner     *conn
	conn      *conn
	discarded bool
	expireAt  int64 // Unix ns when an offline persistent session expires; 0: never
	subs      map[string]byte
	lastID    uint16
	inflight  []*inflightMessage // in the order sent
	queue     []delivery         // waiting for the in-flight window or the client; see queuePushLocked
	// headSeq is the seq of queue[0], MaxUint64 while the queue is empty
	// or discarded; written under mu, read by sessionBudget without it.
	headSeq atomic.Uint64
	// unreleased holds the ids of inbound QoS 2 messages delivered onward
	// whose PUBREL has not come yet: a repeated PUBLISH with one of them is
	// not delivered again [MQTT-4.3.3-2].
	unreleased map[uint16]struct{}
	// subIDs holds the v5 Subscription Identifiers by filter; nil until
	// the client gives one. At most one per subscription.
	subIDs map[string]uint32
	// pendingWill is a v5 will waiting for its Will Delay Interval (see
	// will_delay.go).
	pendingWill *delayedWill
}

func newSession(clientID string, clean bool) *session {
	ss := &session{clientID: clientID, clean: clean}
	ss.headSeq.Store(math.MaxUint64)
	return ss
}

// nextIDLocked returns a packet id not used by a message in flight
// [MQTT-2.3.1-2]; the window is far below 65535, so one exists.
func (ss *session) nextIDLocked() uint16 {
	for {
		ss.lastID++
		if ss.lastID == 0 {
			ss.lastID = 1
		}
		if ss.findLocked(ss.lastID) < 0 {
			return ss.lastID
		}
	}
}

func (ss *session) findLocked(id uint16) int {
	for i, m := range ss.inflight {
		if m.id == id {
			return i
		}
	}
	return -1
}

// discardLocked forgets a session: it is removed from the map and the
// subscription tree, and whatever was queued for it is dropped. The caller
// holds s.sessMu.
func (s *Server) discardLocked(sess *session) {
	if s.sessions[sess.clientID] == sess {
		delete(s.sessions, sess.clientID)
		s.stats.sessions.Add(-1)
		if !sess.clean {
			s.stats.persistent.Add(-1)
		}
	}
	sess.mu.Lock()
	s.persistSessionOp(sess, persist.DeleteSession(sess.clientID))
	s.releaseWillLocked(sess)
	sess.discarded = true
	filters := sess.subs
	sess.subs, sess.subIDs = nil, nil
	s.releaseAllLocked(sess)
	sess.inflight, sess.queue, sess.unreleased = nil, nil, nil
	sess.mu.Unlock()
	for filter, grant := range filters {
		s.subs.remove(filter, sess, grant&optShared != 0)
	}
}

// expireSessions discards persistent sessions left offline longer than
// SessionExpiry, until the server stops.
func (s *Server) expireSessions() {
	period := min(max(s.cfg.SessionExpiry/2, 10*time.Millisecond), time.Minute)
	ticker := time.NewTicker(period)
	defer ticker.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-ticker.C:
			s.expireSessionsNow()
		}
	}
}

// expireSessionsNow runs one expiry sweep.
func (s *Server) expireSessionsNow() {
	now := s.cfg.Now()
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	for _, sess := range s.sessions {
		s.discardIfExpiredLocked(sess, now)
	}
}

// discardIfExpiredLocked discards sess if it is offline and its expiry
// has passed, and reports whether it did. The sweep runs only now and
// then (expireSessions), so a reconnect checks too: an expired session is
// never resumed [MQTT-3.1.2-23]. The caller holds s.sessMu.
func (s *Server) discardIfExpiredLocked(sess *session, now time.Time) bool {
	sess.mu.Lock()
	expired := sess.owner == nil && sess.expireAt != 0 && now.UnixNano() >= sess.expireAt
	sess.mu.Unlock()
	if expired {
		s.discardLocked(sess)
		s.stats.sessionsExpired.Add(1)
	}
	return expired
}

// subscriptionIDsLocked returns the Subscription Identifiers of the
// subscriptions of ss that match topic, in increasing order, for the one
// copy of a message they bring [MQTT-3.3.4-3], [MQTT-3.3.4-4]; nil when
// ss has none. The caller holds ss.mu.
func (ss *session) subscriptionIDsLocked(topic string) []uint32 {
	if len(ss.subIDs) == 0 {
		return nil
	}
	var ids []uint32
	for filter, id := range ss.subIDs {
		if strings.HasPrefix(filter, "$share/") { // only a v5 client gives identifiers
			_, filter = splitShared(filter)
		}
		if topicMatches(filter, topic) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}
