// Package mqttbroker is an MQTT 3.1.1 and 5.0 broker (accepting MQTT 3.1
// clients, "MQIsdp" level 3, too) that reports the lifecycle of every TCP
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
// MQTT 5.0: the protocol level of CONNECT picks the codec per connection
// (decodePacket, decodePacketV5); packet_properties.go holds the
// properties codec and packet_v5.go the reason codes and the packets only
// 5.0 has (DISCONNECT with a reason, AUTH, UNSUBACK with codes). A v5
// connection's state (conn_v5.go: session expiry, receive maximum,
// maximum packet size, topic aliases, the DISCONNECT reason code) sits
// behind a pointer allocated only for v5 clients, so a 3.1.1 connection
// pays 8 bytes for it; will_delay.go holds wills waiting for their Will
// Delay Interval (one per session at most); trie.go keeps shared
// subscriptions ($share/{name}/{filter}, for v5 clients) beside the
// others, and a session its subscription identifiers; v5_*.go the server
// keep alive, the Reason Strings of refusals (unless the client's Request
// Problem Information is 0) and the Topic Aliases the server sends, put
// into PUBLISHes as they reach the socket. Enhanced authentication is
// refused (CONNACK 0x8C); Response Information is never sent.
//
// Layout: packet_*.go is the codec (one file per packet type, strict in
// both directions); conn*.go the connection (one reading goroutine while
// there is something to read; a writer goroutine only while other
// connections have queued packets for it); connect.go CONNECT, authentication and takeover; handle.go the
// packets after it; session.go and deliver.go sessions and the QoS 1/2
// flows; trie.go and retained.go topic trees; auth/ password, ACL and
// signature files; kick.go an operator's close (Kick, reason
// api_disconnect); presence_topics.go the $SYS/presence messages;
// persistence.go journals persistent sessions and retained messages into
// persist/ (Config.Persistence) and rebuilds them at start.
//
// Listen makes the listener Serve expects: TCP keepalive off, switched on
// per connection only for clients that declare MQTT keepalive 0. Serve
// takes any net.Listener; the other transports are layers over it, each a
// listener in, a listener out: proxyproto/ reads a PROXY protocol header
// (the connection stays a *net.TCPConn with the device's address); tls.go
// serves TLS (ServeTLS); websocket.go and websocket_conn.go frame MQTT in
// WebSocket messages (RFC 6455) inside the pooled read buffer. TLS and
// WebSocket connections park like plain ones, on the socket beneath.
//
// Memory: on Linux an idle connection holds no goroutine — it is parked
// in an epoll instance of the server (idle_linux.go) until its socket is
// readable, kicked, or its keepalive runs out; the goroutine woken then
// reads the packet itself and hands the waiting on — and no read buffer (reads
// go through syscall.RawConn and borrow pooled buffers): only its state,
// about 1.7 KiB of RSS measured by BenchmarkIdleConnectionMemory. Elsewhere
// it keeps a 2 KiB goroutine stack, about 4 KiB in all.
//
// Budgets: whatever peers send, the messages the broker holds stay within
// global budgets (Config; behaviour when reached in brackets):
//
//   - retained messages: 100,000 and 64 MiB, overhead included [a new
//     retained topic is not stored, the message is still delivered;
//     replacing and clearing always work];
//   - QoS 1/2 messages held for sessions, queued or in flight: 128 MiB in
//     all, each message counted once [the oldest queued message of any
//     session is dropped]; persistent sessions: 100,000 [CONNACK 0x03];
//   - bytes waiting to be written: 1 MiB per connection [the client is
//     disconnected, tcpclean slow_consumer] and 64 MiB in all [clients that
//     are behind lose QoS 0 messages, or are disconnected for QoS 1/2];
//   - packets being read that do not fit a read buffer: 64 MiB in all
//     (MaxInboundBytesTotal) [the connection is closed, tcpclean
//     slow_consumer];
//   - wills, of connected clients and delayed: 64 MiB in all
//     (MaxWillBytesTotal) [CONNACK 0x03, v5 0x97];
//   - connections: MaxConnections [closed at once, as when the process is
//     out of descriptors].
//
// So messages, packets and wills take at most 384 MiB; the state of sessions and connections
// comes on top, about 1.2 KiB per offline persistent session with one
// subscription (120 MiB at the limit) and 1.7 KiB per idle connection. Not
// budgeted in bytes: the subscriptions (MaxSubscriptionsPerClient per
// session, MaxSubscriptionsTotal in all) and, for MQTT 5.0 clients, topic
// aliases (10 inbound and at most 16 outbound per connection, of up to
// MaxTopicLength bytes each). The Go
// collector lets the heap grow to twice the live data before it runs: with
// the defaults, under the three attacks at once (100,000 retained topics
// of 16 KiB; 100 offline sessions sent 1,000 QoS 1 messages of 16 KiB
// each; 200 subscribers that never read flooded with 100 KB messages) the
// broker peaked at 630 MB RSS (presenced serve: 650 MB), 420 MB with
// GOMEMLIMIT=400MiB; before the budgets, either of the first two alone
// took 2.3 GB and more.
package mqttbroker
