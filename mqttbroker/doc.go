// Package mqttbroker is an MQTT 3.1.1 broker (accepting MQTT 3.1 clients,
// "MQIsdp" level 3, too) that reports the lifecycle of every TCP
// connection — connect, disconnect, tcpclean — through an EventSink.
//
// Every accepted connection is a channel with a random 128-bit id. The
// connect event is handed to the sink before CONNACK is sent; a sink error
// refuses the client with CONNACK 0x03. Exactly one tcpclean follows every
// connect, with the reason the connection ended.
//
// Protocol checks cite the specification clause they enforce, as
// [MQTT-x.y.z-n]; a protocol violation closes the connection
// [MQTT-4.8.0-1] (tcpclean reason protocol_error, will published).
//
// Layout: packet_*.go is the codec (one file per packet type, strict in
// both directions); conn*.go the connection (one reading goroutine; a
// writer goroutine only while other connections have queued packets for
// it); connect.go CONNECT, authentication and takeover; handle.go the
// packets after it; session.go and deliver.go sessions and the QoS 1/2
// flows; trie.go and retained.go topic trees; auth/ password, ACL and
// signature files.
//
// Memory: an idle connection holds a 2 KiB goroutine stack, no read
// buffer (reads wait through syscall.RawConn and borrow pooled buffers)
// and a few hundred bytes of state — about 4 KiB of RSS in all, measured by
// BenchmarkIdleConnectionMemory.
package mqttbroker
