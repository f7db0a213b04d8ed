package main

import (
	"net"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// httpConnectionsForFileLimit is the default of --http-max-connections:
// half the descriptors connectionsForFileLimit leaves to everything but
// MQTT, so that HTTP and SSE clients piling up still leave the other half
// to the database pool, the outbox and the runtime. 0 (unknown limit)
// means unlimited.
func httpConnectionsForFileLimit(soft uint64) int {
	if soft == 0 {
		return 0
	}
	headroom := int(min(soft, 1<<30)) - connectionsForFileLimit(soft)
	return max(64, headroom/2)
}

// connLimitListener bounds the connections an HTTP listener holds at once:
// past max, a new connection is closed as soon as it is accepted (before
// any TLS handshake), as the MQTT listener does, and counted.
type connLimitListener struct {
	net.Listener
	max           int64 // 0: unlimited
	open, refused atomic.Int64
}

func newConnLimitListener(inner net.Listener, max int) *connLimitListener {
	return &connLimitListener{Listener: inner, max: int64(max)}
}

func (l *connLimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if n := l.open.Add(1); l.max > 0 && n > l.max {
			l.open.Add(-1)
			l.refused.Add(1)
			c.Close()
			continue
		}
		return &limitedConn{Conn: c, l: l}, nil
	}
}

// limitedConn gives its place back once, however often it is closed.
type limitedConn struct {
	net.Conn
	l    *connLimitListener
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}

var (
	httpConnsDesc        = prometheus.NewDesc("presenced_http_connections", "HTTP connections held now (API, SSE streams, probes and scrapes).", nil, nil)
	httpConnsRefusedDesc = prometheus.NewDesc("presenced_http_connections_refused_total", "HTTP connections closed at once: over --http-max-connections.", nil, nil)
)

func (l *connLimitListener) Describe(ch chan<- *prometheus.Desc) {
	ch <- httpConnsDesc
	ch <- httpConnsRefusedDesc
}

func (l *connLimitListener) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(httpConnsDesc, prometheus.GaugeValue, float64(l.open.Load()))
	ch <- prometheus.MustNewConstMetric(httpConnsRefusedDesc, prometheus.CounterValue, float64(l.refused.Load()))
}
