package mqttbroker

import "time"

// serverKeepAlive returns the Server Keep Alive to tell a v5 client whose
// CONNECT asked for keepalive seconds (0: none), when the server has a
// maximum (Config.MaxKeepalive, 0: none) and the client asked for more, or
// for no keepalive at all; ok is false when the client's value stands
// [MQTT-3.2.2-21], [MQTT-3.2.2-22].
func serverKeepAlive(keepalive uint16, maximum time.Duration) (seconds uint16, ok bool) {
	if maximum <= 0 {
		return 0, false
	}
	limit := uint16(maximum / time.Second) // 1..65535 (withDefaults)
	if keepalive != 0 && keepalive <= limit {
		return 0, false
	}
	return limit, true
}
