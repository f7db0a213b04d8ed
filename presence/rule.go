package presence

// ChannelEvents is the set of event types seen for one channel. Events are
// delivered at least once and in any order, so the rule is evaluated on this
// set and never on "the last message received".
type ChannelEvents struct {
	Connect    bool
	Disconnect bool
	TCPClean   bool
}

// Add records that an event of type t was seen. Adding twice changes nothing.
func (c *ChannelEvents) Add(t EventType) {
	switch t {
	case EventConnect:
		c.Connect = true
	case EventDisconnect:
		c.Disconnect = true
	case EventTCPClean:
		c.TCPClean = true
	}
}

// Open reports whether the channel counts towards its client being online:
// connect seen and tcpclean not seen. A disconnect alone does not close a
// channel (the socket may still be open); a tcpclean that arrives before its
// connect closes the channel all the same.
func (c ChannelEvents) Open() bool { return c.Connect && !c.TCPClean }

// Online is the rule of presenced: a client is online if any of its channels
// has a connect without a tcpclean.
func Online(channels []ChannelEvents) bool {
	for _, c := range channels {
		if c.Open() {
			return true
		}
	}
	return false
}
