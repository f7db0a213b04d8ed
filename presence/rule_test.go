package presence

import "testing"

// events builds the set of one channel from the types delivered, in order
// and with duplicates, as a transport may deliver them.
func events(types ...EventType) ChannelEvents {
	var c ChannelEvents
	for _, t := range types {
		c.Add(t)
	}
	return c
}

func TestOnlineRule(t *testing.T) {
	tests := []struct {
		name     string
		channels []ChannelEvents
		want     bool
	}{
		{"no channels", nil, false},
		{"connect", []ChannelEvents{events(EventConnect)}, true},
		{"connect twice", []ChannelEvents{events(EventConnect, EventConnect)}, true},
		{"disconnect without tcpclean stays online", []ChannelEvents{events(EventConnect, EventDisconnect)}, true},
		{"tcpclean closes", []ChannelEvents{events(EventConnect, EventDisconnect, EventTCPClean)}, false},
		{"tcpclean before connect closes", []ChannelEvents{events(EventTCPClean, EventConnect)}, false},
		{"tcpclean alone", []ChannelEvents{events(EventTCPClean)}, false},
		{"takeover: old closed then new connect", []ChannelEvents{events(EventConnect, EventTCPClean), events(EventConnect)}, true},
		{"takeover: new connect then old closed", []ChannelEvents{events(EventConnect), events(EventConnect, EventTCPClean)}, true},
		{"many channels, one open", []ChannelEvents{events(EventConnect, EventTCPClean), events(EventTCPClean), events(EventConnect), events(EventDisconnect)}, true},
		{"many channels, none open", []ChannelEvents{events(EventConnect, EventTCPClean), events(EventTCPClean), events(EventDisconnect)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Online(tt.channels); got != tt.want {
				t.Fatalf("Online(%+v) = %v, want %v", tt.channels, got, tt.want)
			}
		})
	}
}
