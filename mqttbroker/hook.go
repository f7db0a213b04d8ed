package mqttbroker

import "github.com/presenced/presenced/presence"

// EventSink receives the lifecycle events of every connection, synchronously
// from the connection's goroutine, in the order they happen on that
// connection. For a connect event a non-nil error means the event cannot be
// recorded now (the transport's backlog is full): the broker then refuses the
// connection with CONNACK 0x03 (server unavailable) and emits nothing more for
// it, so no client is accepted whose presence would go unrecorded.
// Errors for disconnect and tcpclean are logged and counted; the sink must
// not refuse them (each admitted connect brings at most two more events, so
// the sink's memory stays bounded by admitting connects only).
type EventSink func(presence.Event) error
