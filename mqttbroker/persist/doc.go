// Package persist is the MQTT broker's durable state in its data
// directory: retained messages and persistent sessions (subscriptions,
// queued and in-flight QoS 1/2 messages, unreleased inbound QoS 2 ids,
// session expiry), so that they survive a restart, graceful or SIGKILL.
// It needs no database: `presenced broker` has none.
//
// # Layout
//
// A snapshot file and an append-only journal of changes (files.go). Every
// record, in both, is framed with its length and a CRC-32C like the event
// outbox's (frame.go); its body is a kind byte and varint-coded fields
// (record.go). The snapshot is the shortest journal that builds the
// state, closed by an end record that counts the records before it; its
// header carries a format version byte and the journal generation it
// starts. Store keeps a mirror of the state in memory, which is what
// bounds, compactions and Open's result come from; it shares the byte
// slices the broker gives it (payloads, properties), so it costs the
// broker its maps and slice headers, not a second copy of the messages.
//
// # Recovery
//
// Open loads the snapshot and replays the journals from its generation
// on, stopping at the first record that is torn (cut short by a crash) or
// corrupt (bad checksum, length or fields); the journal is truncated
// there, durably, the cut logged and counted (Stats.TornTruncated,
// TruncatedBytes), and any later journal removed. A snapshot that is not
// whole is a *CorruptError: it is only ever installed complete.
//
// # Compaction
//
// When the journal passes max(CompactBytes, 2 × snapshot) (capped at
// MaxBytes/3) the state is written as a new snapshot, crash-safe at every
// step (compact.go): new journal first, then snapshot.tmp, fsync, rename,
// fsync of the directory, removal of the old journals.
//
// # Durability, per operation
//
// Stage applies changes and queues them for the next group commit
// without waiting; Pending.Wait (or Append, which is both) returns once
// they are on disk, fdatasync'd. Concurrent callers share one fdatasync.
// The broker must Wait before it sends anything that acknowledges the
// change (invariant 1 of DESIGN.md: durable before acknowledged), and
// may stage without waiting when nothing is acknowledged:
//
//   - SetRetained / DeleteRetained: Wait before PUBACK (QoS 1) or PUBREC
//     (QoS 2) of the PUBLISH that carried it — a cleared retained message
//     that reappears after a restart would be served as current; for a
//     QoS 0 publish, stage only.
//   - Enqueue, Send of a message to a persistent session: Wait before
//     the publisher's PUBACK/PUBREC (QoS 1/2 publishes only; QoS 0 is not
//     kept for offline sessions).
//   - PutSession (new session, or expiry changed) and Subscribe /
//     Unsubscribe: Wait before CONNACK (session present), SUBACK and
//     UNSUBACK respectively.
//   - HoldInbound: Wait before PUBREC — after it the client will not send
//     the PUBLISH again, and a duplicate must still be recognised
//     [MQTT-4.3.3-2]. ReleaseInbound: stage before PUBCOMP (losing it only
//     leaves an id that the next PUBLISH with it clears).
//   - SendQueued, Released, Acked, Dequeue, DeleteSession: stage only. A
//     lost SendQueued or Acked makes the message be resent after a
//     restart, which QoS 1 allows and a QoS 2 receiver detects by its
//     packet id; a lost Released resends the PUBLISH instead of the
//     PUBREL, and the lost removal of an expired session is repeated by
//     the next expiry sweep. Released must still be staged before the
//     PUBREL goes out, so it is ordered before any later Acked.
//
// # Bounds
//
// Options.MaxBytes bounds the files: the live state (what the next
// snapshot takes) is kept within MaxBytes/3, and the snapshot, journals
// and room for the next snapshot within MaxBytes. Records that add to the
// state (SetRetained, a new PutSession, Subscribe, Enqueue, Send,
// HoldInbound) beyond that are refused with a *NoSpaceError (ErrNoSpace):
// the broker answers with MQTT 5.0 reason 0x97 (quota exceeded), or
// closes a 3.1.1 connection, since 3.1.1 has no negative PUBACK. Records
// that remove, move or mark always succeed. Each message is stored once
// per session that holds it: a message fanned out to many offline
// sessions costs its size once per session.
//
// A failed write or fdatasync fails the store (the "fsyncgate" lesson):
// every later Stage returns the error until the process restarts and
// recovers from the disk.
package persist
