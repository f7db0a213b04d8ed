package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/mqttbroker"
	"github.com/presenced/presenced/mqttbroker/persist"
)

// openBrokerPersistence opens the broker's durable state in
// --data-dir/broker when --mqtt-persistence is on, hands it and what it
// recovered to bc, and returns the component that closes it. Added before
// the broker, it stops after it: the broker's last changes (the sessions
// of the connections it closed) are written first.
func openBrokerPersistence(cfg config, bc *mqttbroker.Config, reg prometheus.Registerer, log *slog.Logger) (component, bool, error) {
	if !cfg.MQTT.Persistence {
		return component{}, false, nil
	}
	dir := filepath.Join(cfg.DataDir, "broker")
	store, state, err := persist.Open(dir, persist.Options{
		MaxBytes: int64(cfg.MQTT.PersistenceMaxMiB) << 20,
		Log:      log.With("component", "mqtt-persistence"),
	})
	if err != nil {
		return component{}, false, fmt.Errorf("open --mqtt-persistence: %w", err)
	}
	stats := store.Stats()
	log.Info("mqtt persistence loaded", "dir", dir, "retained", len(state.Retained), "sessions", len(state.Sessions),
		"records", stats.RecordsReplayed, "torn_truncated", stats.TornTruncated)
	bc.Persistence, bc.Persisted = store, state
	reg.MustRegister(persistenceCollector{store})
	return component{
		name:     "mqtt persistence",
		stop:     func(context.Context) error { return store.Close() },
		critical: true, // staged changes that could not be written are lost
	}, true, nil
}

// persistenceCollector exports the store's Stats.
type persistenceCollector struct{ store *persist.Store }

var persistenceMetrics = []struct {
	name, help string
	gauge      bool
	value      func(persist.Stats) float64
}{
	{"presenced_mqtt_persistence_journal_bytes", "Bytes of the broker's journal files.", true, func(s persist.Stats) float64 { return float64(s.JournalBytes) }},
	{"presenced_mqtt_persistence_snapshot_bytes", "Bytes of the broker's snapshot.", true, func(s persist.Stats) float64 { return float64(s.SnapshotBytes) }},
	{"presenced_mqtt_persistence_live_bytes", "Encoded size of the persisted state (bounded by a third of --mqtt-persistence-max-mib).", true, func(s persist.Stats) float64 { return float64(s.LiveBytes) }},
	{"presenced_mqtt_persistence_replayed_records", "Records read back at start.", true, func(s persist.Stats) float64 { return float64(s.RecordsReplayed) }},
	{"presenced_mqtt_persistence_torn_truncated", "Journals cut at a torn or corrupt record at start.", true, func(s persist.Stats) float64 { return float64(s.TornTruncated) }},
	{"presenced_mqtt_persistence_records_total", "Changes journaled.", false, func(s persist.Stats) float64 { return float64(s.Records) }},
	{"presenced_mqtt_persistence_fsyncs_total", "Group commits (one fdatasync each) of the journal.", false, func(s persist.Stats) float64 { return float64(s.Fsyncs) }},
	{"presenced_mqtt_persistence_compactions_total", "Snapshots written.", false, func(s persist.Stats) float64 { return float64(s.Compactions) }},
	{"presenced_mqtt_persistence_compaction_failures_total", "Compactions abandoned on an I/O error.", false, func(s persist.Stats) float64 { return float64(s.CompactionFailures) }},
	{"presenced_mqtt_persistence_refused_total", "Changes refused because the state reached --mqtt-persistence-max-mib.", false, func(s persist.Stats) float64 { return float64(s.RefusedForSpace) }},
}

func (c persistenceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range persistenceMetrics {
		ch <- prometheus.NewDesc(m.name, m.help, nil, nil)
	}
}

func (c persistenceCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.store.Stats()
	for _, m := range persistenceMetrics {
		kind := prometheus.CounterValue
		if m.gauge {
			kind = prometheus.GaugeValue
		}
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(m.name, m.help, nil, nil), kind, m.value(s))
	}
}
