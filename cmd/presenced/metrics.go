package main

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/consumer"
	"github.com/presenced/presenced/mqttbroker"
	"github.com/presenced/presenced/presence"
)

// The broker and the consumer keep plain counters (they import no metrics
// library); these collectors read them at scrape time.

// brokerCollector exposes mqttbroker.Server.Stats.
type brokerCollector struct {
	stats func() mqttbroker.Stats
}

var brokerMetrics = []struct {
	name, help string
	gauge      bool
	value      func(mqttbroker.Stats) int64
}{
	{"presenced_mqtt_connections", "TCP connections held.", true, func(s mqttbroker.Stats) int64 { return s.Connections }},
	{"presenced_mqtt_channels_open", "Connections with a connect event and no tcpclean yet.", true, func(s mqttbroker.Stats) int64 { return s.Channels }},
	{"presenced_mqtt_sessions", "MQTT sessions held, connected or persistent.", true, func(s mqttbroker.Stats) int64 { return s.Sessions }},
	{"presenced_mqtt_retained_messages", "Retained messages stored.", true, func(s mqttbroker.Stats) int64 { return s.RetainedMessages }},
	{"presenced_mqtt_accepted_total", "TCP connections accepted.", false, func(s mqttbroker.Stats) int64 { return s.Accepted }},
	{"presenced_mqtt_connects_total", "CONNECTs answered with CONNACK 0.", false, func(s mqttbroker.Stats) int64 { return s.Connects }},
	{"presenced_mqtt_refused_total", "CONNECTs refused.", false, func(s mqttbroker.Stats) int64 { return s.Refused }},
	{"presenced_mqtt_connect_timeouts_total", "Connections closed for not sending CONNECT in time.", false, func(s mqttbroker.Stats) int64 { return s.ConnectTimeouts }},
	{"presenced_mqtt_protocol_errors_total", "Connections closed for a protocol violation.", false, func(s mqttbroker.Stats) int64 { return s.ProtocolErrors }},
	{"presenced_mqtt_keepalive_expired_total", "Connections closed for keepalive expiry.", false, func(s mqttbroker.Stats) int64 { return s.KeepaliveExpired }},
	{"presenced_mqtt_takeovers_total", "Connections closed because their client id connected again.", false, func(s mqttbroker.Stats) int64 { return s.Takeovers }},
	{"presenced_mqtt_sink_errors_total", "Lifecycle events the transport failed to accept.", false, func(s mqttbroker.Stats) int64 { return s.SinkErrors }},
	{"presenced_mqtt_messages_in_total", "PUBLISH packets received.", false, func(s mqttbroker.Stats) int64 { return s.MessagesIn }},
	{"presenced_mqtt_messages_out_total", "PUBLISH packets sent.", false, func(s mqttbroker.Stats) int64 { return s.MessagesOut }},
	{"presenced_mqtt_bytes_in_total", "Bytes of packets received.", false, func(s mqttbroker.Stats) int64 { return s.BytesIn }},
	{"presenced_mqtt_bytes_out_total", "Bytes written.", false, func(s mqttbroker.Stats) int64 { return s.BytesOut }},
	{"presenced_mqtt_dropped_total", "QoS 0 messages dropped on a slow connection.", false, func(s mqttbroker.Stats) int64 { return s.Dropped }},
	{"presenced_mqtt_persistent_sessions", "Sessions with cleanSession=0, connected or not.", true, func(s mqttbroker.Stats) int64 { return s.PersistentSessions }},
	{"presenced_mqtt_retained_bytes", "Estimated memory of retained messages.", true, func(s mqttbroker.Stats) int64 { return s.RetainedBytes }},
	{"presenced_mqtt_session_bytes", "Memory of QoS 1/2 messages held for sessions, queued or in flight.", true, func(s mqttbroker.Stats) int64 { return s.SessionBytes }},
	{"presenced_mqtt_queued_messages", "QoS 1/2 messages waiting in session queues.", true, func(s mqttbroker.Stats) int64 { return s.QueuedMessages }},
	{"presenced_mqtt_outbound_bytes", "Bytes waiting to be written to clients.", true, func(s mqttbroker.Stats) int64 { return s.OutboundBytes }},
	{"presenced_mqtt_subscriptions", "Subscriptions of all sessions, a session's filter each (--mqtt-max-subscriptions-total).", true, func(s mqttbroker.Stats) int64 { return s.Subscriptions }},
	{"presenced_mqtt_will_bytes", "Bytes of wills held, of connected clients and delayed (--mqtt-max-will-total-mib).", true, func(s mqttbroker.Stats) int64 { return s.WillBytes }},
	{"presenced_mqtt_wills_refused_total", "CONNECTs refused (0x03) because their will would pass --mqtt-max-will-total-mib.", false, func(s mqttbroker.Stats) int64 { return s.WillsRefused }},
	{"presenced_mqtt_inbound_bytes", "Bytes of packets larger than 4 KiB being read (--mqtt-max-inbound-total-mib).", true, func(s mqttbroker.Stats) int64 { return s.InboundBytes }},
	{"presenced_mqtt_inbound_refused_total", "Clients disconnected (slow_consumer) because their large packet would pass --mqtt-max-inbound-total-mib.", false, func(s mqttbroker.Stats) int64 { return s.InboundRefused }},
	{"presenced_mqtt_denied_publishes_total", "PUBLISHes dropped by the ACL.", false, func(s mqttbroker.Stats) int64 { return s.DeniedPublishes }},
	{"presenced_mqtt_denied_subscribes_total", "Subscriptions refused by the ACL.", false, func(s mqttbroker.Stats) int64 { return s.DeniedSubscribes }},
	{"presenced_mqtt_limit_rejections_total", "Topics or subscriptions refused by a size limit (topic length, subscriptions per client).", false, func(s mqttbroker.Stats) int64 { return s.LimitRejections }},
	{"presenced_mqtt_wills_published_total", "Will messages published.", false, func(s mqttbroker.Stats) int64 { return s.WillsPublished }},
	{"presenced_mqtt_sessions_expired_total", "Persistent sessions discarded after their expiry.", false, func(s mqttbroker.Stats) int64 { return s.SessionsExpired }},
	{"presenced_mqtt_connections_over_limit_total", "Connections closed at once: over --mqtt-max-connections or out of file descriptors.", false, func(s mqttbroker.Stats) int64 { return s.ConnectionsOverLimit }},
	{"presenced_mqtt_sessions_refused_total", "CONNECTs refused (0x03) for --mqtt-max-persistent-sessions.", false, func(s mqttbroker.Stats) int64 { return s.SessionsRefused }},
	{"presenced_mqtt_slow_consumers_total", "Clients disconnected for letting outbound bytes pile up.", false, func(s mqttbroker.Stats) int64 { return s.SlowConsumers }},
	{"presenced_mqtt_kicked_total", "Connections closed by an operator (DELETE /clients/{id}/connection, reason api_disconnect).", false, func(s mqttbroker.Stats) int64 { return s.Kicked }},
	{"presenced_mqtt_queue_dropped_total", "QoS 1/2 messages dropped because one session queue was full.", false, func(s mqttbroker.Stats) int64 { return s.QueueDropped }},
	{"presenced_mqtt_queue_evicted_total", "QoS 1/2 messages dropped for --mqtt-max-session-mib, oldest first.", false, func(s mqttbroker.Stats) int64 { return s.QueueEvicted }},
	{"presenced_mqtt_retained_refused_total", "Retained messages not stored for the retained budget (still delivered).", false, func(s mqttbroker.Stats) int64 { return s.RetainedRefused }},
	{"presenced_mqtt_presence_messages_total", "Presence messages published on $SYS/presence to at least one subscription (--mqtt-presence-topics).", false, func(s mqttbroker.Stats) int64 { return s.PresenceMessages }},
	{"presenced_mqtt_presence_forged_total", "PUBLISHes and wills to $SYS/presence from clients dropped (or CONNECTs refused for such a will).", false, func(s mqttbroker.Stats) int64 { return s.PresenceForged }},
	{"presenced_mqtt_v5_connects_total", "Accepted CONNECTs of MQTT 5.0 clients (counted in presenced_mqtt_connects_total too).", false, func(s mqttbroker.Stats) int64 { return s.V5Connects }},
	{"presenced_mqtt_too_large_for_peer_total", "Messages not sent to an MQTT 5 client because they exceed its Maximum Packet Size.", false, func(s mqttbroker.Stats) int64 { return s.TooLargeForPeer }},
	{"presenced_mqtt_messages_expired_total", "Messages not delivered because their Message Expiry Interval passed.", false, func(s mqttbroker.Stats) int64 { return s.MessagesExpired }},
	{"presenced_mqtt_wills_delayed_total", "MQTT 5 wills set to wait for their Will Delay Interval.", false, func(s mqttbroker.Stats) int64 { return s.WillsDelayed }},
	{"presenced_mqtt_wills_cancelled_total", "Delayed wills not published because the session was taken up in time.", false, func(s mqttbroker.Stats) int64 { return s.WillsCancelled }},
}

// refusedDesc counts refusing CONNACKs by reason: a bounded label, one
// value per MQTT 3.1.1 return code.
var refusedDesc = prometheus.NewDesc("presenced_mqtt_connects_refused_total", "CONNECTs answered with a refusing CONNACK, by reason.", []string{"reason"}, nil)

func (c brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range brokerMetrics {
		ch <- prometheus.NewDesc(m.name, m.help, nil, nil)
	}
	ch <- refusedDesc
}

func (c brokerCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	for reason, n := range map[string]int64{"protocol_version": s.RefusedProtocol, "identifier_rejected": s.RefusedIdentifier,
		"server_unavailable": s.RefusedUnavailable, "bad_credentials": s.RefusedBadAuth, "not_authorized": s.RefusedNotAuthorized} {
		ch <- prometheus.MustNewConstMetric(refusedDesc, prometheus.CounterValue, float64(n), reason)
	}
	for _, m := range brokerMetrics {
		kind := prometheus.CounterValue
		if m.gauge {
			kind = prometheus.GaugeValue
		}
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(m.name, m.help, nil, nil), kind, float64(m.value(s)))
	}
}

// consumerMetrics are the pipeline's metrics: events emitted by the broker
// into the transport, and what the consumer made of them.
type consumerMetrics struct {
	reg        prometheus.Registerer
	emitted    *prometheus.CounterVec
	batchSizes prometheus.Histogram
}

// newConsumerMetrics registers the emitted-events counter and the batch
// size histogram; register adds the consumer's counters once it exists.
func newConsumerMetrics(reg prometheus.Registerer) *consumerMetrics {
	m := &consumerMetrics{reg: reg,
		emitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presenced_events_emitted_total",
			Help: "Lifecycle events the broker handed to the transport, by event type.",
		}, []string{"type"}),
		batchSizes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "presenced_consumer_batch_size",
			Help:    "Events per store transaction.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000},
		}),
	}
	for _, t := range presence.EventTypes {
		m.emitted.WithLabelValues(string(t)) // show zeros from the start
	}
	reg.MustRegister(m.emitted, m.batchSizes)
	return m
}

// register exposes the applier's counters.
func (m *consumerMetrics) register(applier *consumer.Applier) {
	stat := func(name, help string, kind prometheus.ValueType, v func() float64) prometheus.Collector {
		if kind == prometheus.GaugeValue {
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, v)
		}
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, v)
	}
	s := &applier.Stats
	m.reg.MustRegister(
		stat("presenced_events_applied_total", "Events newly stored by the consumer.", prometheus.CounterValue, func() float64 { return float64(s.Applied.Load()) }),
		stat("presenced_events_duplicate_total", "Events the store already had (redeliveries).", prometheus.CounterValue, func() float64 { return float64(s.Duplicates.Load()) }),
		stat("presenced_events_rejected_total", "Events parked as invalid.", prometheus.CounterValue, func() float64 { return float64(s.Rejected.Load()) }),
		stat("presenced_consumer_batches_total", "Store transactions attempted by the consumer.", prometheus.CounterValue, func() float64 { return float64(s.Batches.Load()) }),
		stat("presenced_consumer_failures_total", "Failed store transactions (retried).", prometheus.CounterValue, func() float64 { return float64(s.Failures.Load()) }),
		stat("presenced_consumer_last_batch_size", "Events in the last store transaction.", prometheus.GaugeValue, func() float64 { return float64(s.LastBatch.Load()) }),
		stat("presenced_consumer_lag_seconds", "Age (broker clock) of the newest event of the last batch when it was stored.", prometheus.GaugeValue,
			func() float64 { return float64(s.LagMillis.Load()) / 1000 }),
	)
}

// countEmitted wraps the broker's event sink to count accepted events.
func (m *consumerMetrics) countEmitted(sink func(presence.Event) error) func(presence.Event) error {
	return func(e presence.Event) error {
		err := sink(e)
		if err == nil {
			m.emitted.WithLabelValues(string(e.Type)).Inc()
		}
		return err
	}
}

// observeBatches wraps the consumer's ApplyFunc to record batch sizes.
func (m *consumerMetrics) observeBatches(apply consumer.ApplyFunc) consumer.ApplyFunc {
	return func(ctx context.Context, events []presence.Event) ([]presence.StoredEvent, error) {
		m.batchSizes.Observe(float64(len(events)))
		return apply(ctx, events)
	}
}
