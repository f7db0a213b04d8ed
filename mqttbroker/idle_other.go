//go:build !linux

package mqttbroker

// idlePoller is Linux-only (epoll); elsewhere every connection keeps its
// reading goroutine.
type idlePoller struct{}

func newIdlePoller() *idlePoller                     { return nil }
func (p *idlePoller) token() uint64                  { return 0 }
func (p *idlePoller) park(c *conn) bool              { return false }
func (p *idlePoller) take(token uint64) bool         { return false }
func (p *idlePoller) expire(c *conn) bool            { return false }
func (p *idlePoller) wait(func(*conn)) (*conn, bool) { return nil, false }
func (p *idlePoller) close()                         {}
