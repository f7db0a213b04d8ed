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
// both directions); conn*.go the connection (one reading goroutine while
// there is something to read; a writer goroutine only while other
// connections have queued packets for it); connect.go CONNECT, authentication and takeover; handle.go the
// packets after it; session.go and deliver.go sessions and the QoS 1/2
// flows; trie.go and retained.go topic trees; auth/ password, ACL and
// signature files.
//
// Listen makes the listener Serve expects: TCP keepalive off, switched on
// per connection only for clients that declare MQTT keepalive 0.
//
// Memory: on Linux an idle connection holds no goroutine — it is parked
// in an epoll instance of the server (idle_linux.go) until its socket is
// readable, kicked, or its keepalive runs out — and no read buffer (reads
// go through syscall.RawConn and borrow pooled buffers): only its state,
// about 1.7 KiB of RSS measured by BenchmarkIdleConnectionMemory. Elsewhere
// it keeps a 2 KiB goroutine stack, about 4 KiB in all.
package mqttbroker
