package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/consumer"
	"github.com/presenced/presenced/consumer/outbox"
	"github.com/presenced/presenced/presence"
)

// openOutbox opens the durable outbox under --data-dir that serve and
// broker write every lifecycle and node event to before acting on it.
// Besides its own filesystem it keeps the disk reserve on those of
// watchDirs (the private PostgreSQL's, which must never fill up).
func openOutbox(cfg config, log *slog.Logger, watchDirs ...string) (*outbox.Outbox, error) {
	dir := filepath.Join(cfg.DataDir, "outbox")
	box, err := outbox.Open(dir, outbox.Options{
		MaxBytes:     int64(cfg.Durability.OutboxMaxMB) << 20,
		MinFreeBytes: cfg.Durability.diskReserve(cfg.DataDir),
		WatchDirs:    watchDirs,
		Log:          log.With("component", "outbox"),
	})
	if err != nil {
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	return box, nil
}

// outboxComponent closes the outbox after everything that writes to or
// reads from it has stopped. Its error is critical: it means events that
// were accepted could not be made durable.
func outboxComponent(box *outbox.Outbox) component {
	return component{name: "outbox", critical: true, stop: func(context.Context) error { return box.Close() }}
}

// outboxWriter is the broker's event sink and the node reporter's emitter
// on the outbox. Appends wait for their fsync whatever the context: a
// connect must be on disk before its CONNACK, and a tcpclean must never
// be lost.
type outboxWriter struct{ box *outbox.Outbox }

func (w outboxWriter) event(e presence.Event) error {
	return w.box.Append(context.Background(), e)
}

func (w outboxWriter) node(n presence.NodeEvent) error {
	return w.box.AppendNode(context.Background(), n)
}

// outboxEntries adapts the outbox to the consumer's Source ("serve").
type outboxEntries struct{ *outbox.Outbox }

func (s outboxEntries) Read(ctx context.Context, max int) ([]consumer.Entry, error) {
	records, err := s.Outbox.Read(ctx, max)
	entries := make([]consumer.Entry, len(records))
	for i, r := range records {
		entries[i] = consumer.Entry{Seq: r.Seq, Node: r.Kind == outbox.KindNode, Payload: r.Payload}
	}
	return entries, err
}

// pumpComponent applies the outbox to the store. At shutdown it drains
// what the broker wrote last; if the deadline comes first, the rest stays
// in the outbox, durable, and is applied at the next start — said in the
// log, and no reason for a non-zero exit.
func pumpComponent(pump *consumer.Pump, box *outbox.Outbox, log *slog.Logger) component {
	drained := make(chan struct{})
	return component{
		name: "consumer",
		run: func(ctx context.Context) error {
			defer close(drained)
			return pump.Run(ctx)
		},
		stop: func(ctx context.Context) error {
			pump.Drain()
			select {
			case <-drained:
			case <-ctx.Done():
				log.Warn("shutdown deadline reached before every event was stored; they stay in the outbox and are applied at the next start",
					"events", box.Stats().BacklogRecords)
			}
			return nil
		},
	}
}

// outboxCollector exposes the outbox's backlog, refusals and disk state.
type outboxCollector struct{ box *outbox.Outbox }

var (
	outboxBacklogDesc    = prometheus.NewDesc("presenced_outbox_backlog_records", "Events in the outbox not yet acknowledged (stored, or sent to RocketMQ).", nil, nil)
	outboxBytesDesc      = prometheus.NewDesc("presenced_outbox_backlog_bytes", "Bytes in the outbox not yet acknowledged.", nil, nil)
	outboxRefusedDesc    = prometheus.NewDesc("presenced_outbox_refused_total", "Connect and node events refused because the outbox reached --outbox-max-mb.", nil, nil)
	outboxLowDiskDesc    = prometheus.NewDesc("presenced_outbox_low_disk_refused_total", "Connect and node events refused because free disk space was below --min-free-disk-mb.", nil, nil)
	outboxLowDiskNowDesc = prometheus.NewDesc("presenced_outbox_low_disk", "1 while new CONNECTs are refused for want of disk space.", nil, nil)
	outboxFreeBytesDesc  = prometheus.NewDesc("presenced_outbox_disk_free_bytes", "Free space last seen on the filesystems the outbox watches (the smallest).", nil, nil)
	outboxLostDesc       = prometheus.NewDesc("presenced_outbox_lost_total", "disconnect/tcpclean events accepted that could not be made durable (the disk stayed full through shutdown).", nil, nil)
	outboxAppendsDesc    = prometheus.NewDesc("presenced_outbox_appends_total", "Records made durable in the outbox.", nil, nil)
	outboxFsyncsDesc     = prometheus.NewDesc("presenced_outbox_fsyncs_total", "Group commits (one fdatasync each) of the outbox.", nil, nil)
	outboxCollectorDescs = []*prometheus.Desc{outboxBacklogDesc, outboxBytesDesc, outboxRefusedDesc, outboxLowDiskDesc, outboxLowDiskNowDesc, outboxFreeBytesDesc, outboxLostDesc, outboxAppendsDesc, outboxFsyncsDesc}
)

func (c outboxCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range outboxCollectorDescs {
		ch <- d
	}
}

func (c outboxCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.box.Stats()
	lowDisk := 0.0
	if s.LowDisk {
		lowDisk = 1
	}
	ch <- prometheus.MustNewConstMetric(outboxBacklogDesc, prometheus.GaugeValue, float64(s.BacklogRecords))
	ch <- prometheus.MustNewConstMetric(outboxBytesDesc, prometheus.GaugeValue, float64(s.BacklogBytes))
	ch <- prometheus.MustNewConstMetric(outboxRefusedDesc, prometheus.CounterValue, float64(s.Refused))
	ch <- prometheus.MustNewConstMetric(outboxLowDiskDesc, prometheus.CounterValue, float64(s.LowDiskRefused))
	ch <- prometheus.MustNewConstMetric(outboxLowDiskNowDesc, prometheus.GaugeValue, lowDisk)
	ch <- prometheus.MustNewConstMetric(outboxFreeBytesDesc, prometheus.GaugeValue, float64(s.DiskFree))
	ch <- prometheus.MustNewConstMetric(outboxLostDesc, prometheus.CounterValue, float64(s.Lost))
	ch <- prometheus.MustNewConstMetric(outboxAppendsDesc, prometheus.CounterValue, float64(s.Appends))
	ch <- prometheus.MustNewConstMetric(outboxFsyncsDesc, prometheus.CounterValue, float64(s.Fsyncs))
}
