// Package rocketmq carries lifecycle events between presenced processes
// through Apache RocketMQ (or Alibaba Cloud's RocketMQ), with
// rocketmq-client-go v2:
//
//   - Forwarder, on the broker side, drains the durable outbox into
//     RocketMQ: tag = eventType, keys = channelId, body = the event JSON, on
//     one configured topic or on Alibaba's per-group topics "<GroupId>_MQTT".
//   - Consumer, on the consumer side, is a clustering push consumer that
//     decodes each batch, parks poison messages through Reject, and applies
//     the valid events in one call (and the brokers' refused connects, tag
//     "refused", through ApplyRefused).
//   - Publisher sends what is not a lifecycle event, once, best-effort:
//     kick commands from presenced api to the control topic, refused
//     connects from presenced broker to the events topic.
//   - ControlConsumer, on every broker node, is a broadcasting push
//     consumer of the control topic: each node receives every kick command,
//     reading from its start time and dropping commands past their expiry.
//
// Delivery is at least once end to end: the forwarder acknowledges outbox
// records only after RocketMQ stored them and resends on any doubt, and the
// consumer commits offsets only after Apply succeeded. The store's
// idempotency absorbs the duplicates.
//
// # Pitfalls of rocketmq-client-go v2.1.2
//
//   - Name servers must be given as "ip:port": the client matches addresses
//     against an IP regular expression and rejects host names with an
//     opaque error. ResolveNameServers resolves host names first.
//   - Producers and consumers in one process share a client per
//     "ip@instanceName"; two with the same instance name share (and shut
//     down) each other's connections and rebalance as one member. Every
//     Forwarder and Consumer therefore uses a unique instance name unless
//     told otherwise.
//   - Shutdown returns before the client's background goroutines end: some
//     sleep up to 10 s before they look at the shutdown signal. Tests that
//     check for leaked goroutines must allow for that.
//   - The client logs through a process-wide logger (rlog) to stdout by
//     default, chattily; RouteClientLogs sends it to slog instead.
//   - A push consumer refuses to start while a subscribed topic has no
//     route (a real broker creates topics on the first send), so Consumer
//     retries starting until every topic exists.
//   - A batch that fails with ConsumeRetryLater goes to %RETRY%<group> and
//     comes back after the broker's delay levels (10 s, 30 s, … 2 h); after
//     MaxReconsumeTimes it lands in %DLQ%<group>, which nothing reads. The
//     default here (64) covers a store outage of about four days.
//   - A real broker returns at most 32 messages per pull unless its
//     maxTransferCountOnMessageInMemory is raised, which caps batches.
//   - A broadcasting consumer keeps its offsets on the client, in
//     $HOME/.rocketmq_client_go/<group>/<ip>@<instance>/offset.json (the
//     directory comes from the environment variable
//     rocketmq.client.localOffsetStoreDir, read at package init; relative
//     to the working directory when HOME is unset). ControlConsumer removes
//     its own file at shutdown and, at start, files untouched for 10
//     minutes (left by killed processes). It has no retry topic: a failed
//     message is not redelivered.
package rocketmq
