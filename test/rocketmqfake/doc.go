// Package rocketmqfake is a wire-compatible Apache RocketMQ test double: one
// process (or one *Fake in a test) hosting a name server and a single master
// broker on 127.0.0.1, speaking the remoting protocol well enough that the
// real github.com/apache/rocketmq-client-go/v2 (v2.1.2) producer and
// clustering push consumer work against it unchanged. Broadcasting push
// consumers work too: the client keeps their offsets itself and asks the
// broker only GET_MAX_OFFSET or SEARCH_OFFSET_BY_TIMESTAMP (per
// ConsumeFromWhere) and PULL_MESSAGE, so every member of the group reads
// every queue (consumer/rocketmq's ControlConsumer tests rely on it).
//
// # Use
//
//	fake := rocketmqfake.New(rocketmqfake.Options{})
//	if err := fake.Start(); err != nil { ... }
//	t.Cleanup(func() { fake.Close() })
//
//	p, _ := producer.NewDefaultProducer(
//		producer.WithNameServer(primitive.NamesrvAddr{fake.NamesrvAddr()}),
//		producer.WithInstanceName("unique-per-client"), // see pitfalls
//		producer.WithRetry(2))
//	c, _ := consumer.NewPushConsumer(
//		consumer.WithNameServer(primitive.NamesrvAddr{fake.NamesrvAddr()}),
//		consumer.WithGroupName("presenced"),
//		consumer.WithInstance("unique-per-client"),
//		consumer.WithConsumerModel(consumer.Clustering),
//		consumer.WithConsumeMessageBatchMaxSize(32))
//
// Then inspect: Messages(topic), DLQ(group), RetryMessages(group),
// Offset/Offsets(group, topic), Lag, SendCount, RequestCount(code),
// Clients, ConsumerIDs(group), Subscription(group, topic). For separate
// processes run cmd/rocketmqfake (flags -namesrv-addr, -broker-addr,
// -queues; it prints "READY namesrv=... broker=..." when listening).
//
// # What it implements
//
// Name server: GET_ROUTEINFO_BY_TOPIC (auto-creating topics: Options.Queues
// queues, default 4; %RETRY%/%DLQ% topics get Options.RetryQueues, default
// 1), GET_BROKER_CLUSTER_INFO, GET_ALL_TOPIC_LIST, DELETE_TOPIC.
//
// Broker: SEND_MESSAGE, SEND_MESSAGE_V2, SEND_BATCH_MESSAGE (and the reply
// variants), with the broker's message ids (store ip:port + commit-log
// offset), tags/keys/properties kept verbatim, compressed bodies, delay
// levels, transactional half messages + END_TRANSACTION; PULL_MESSAGE with
// long polling (held until a message lands, the client's suspend timeout or
// Options.MaxLongPoll) and broker-side tag filtering, records encoded in the
// commit-log layout primitive.DecodeMessage reads; HEART_BEAT,
// UNREGISTER_CLIENT, GET_CONSUMER_LIST_BY_GROUP and a
// NOTIFY_CONSUMER_IDS_CHANGED push to every member whenever a group's member
// set changes; QUERY/UPDATE_CONSUMER_OFFSET (plus the commit offset piggy-
// backed on pulls); GET_MAX/MIN_OFFSET, SEARCH_OFFSET_BY_TIMESTAMP,
// GET_EARLIEST_MSG_STORETIME; CONSUMER_SEND_MSG_BACK into %RETRY%<group>
// (reconsumeTimes+1, RETRY_TOPIC, ORIGIN_MESSAGE_ID) and into %DLQ%<group>
// once maxReconsumeTimes is reached; LOCK/UNLOCK_BATCH_MQ; QUERY_MESSAGE,
// VIEW_MESSAGE_BY_ID; UPDATE_AND_CREATE_TOPIC. Anything else is answered
// REQUEST_CODE_NOT_SUPPORTED and logged at warn level.
//
// Faults: Inject(Fault{...}) delays, drops, answers with an error code or
// closes the connection for chosen request codes, N times or until
// cleared; Pause/Resume/UnreachableFor silence both servers like a network
// partition; DropConnections cuts every connection; RefuseConnections
// closes/reopens the listeners; Stop/Start restarts on the same ports with
// all state kept.
//
// # Deliberate differences from a real broker
//
//   - QUERY_CONSUMER_OFFSET for a queue a group never committed answers 0,
//     as a real broker does while the queue's first message is still in
//     memory: a new group reads the topic from the beginning whatever
//     ConsumeFromWhere says. Options.NewGroupsStartAtMaxOffset answers
//     QUERY_NOT_FOUND instead, so CONSUME_FROM_LAST_OFFSET starts at the end.
//   - Delay levels (retries included) are immediate unless
//     Options.DelayLevels is set (RealDelayLevels is the broker's table), so
//     ConsumeRetryLater redelivers within milliseconds.
//   - A client whose connection the fake closed (Stop, DropConnections, a
//     CloseConn fault) stays in its groups until Options.ClientExpiry
//     (120 s) instead of vanishing: the Go client re-heartbeats only every
//     30 s, and a rebalance that does not find itself in the consumer list
//     drops every queue. A client that closes its own connection leaves at
//     once. Consequence: a consumer shut down while its connection was cut
//     by the fake lingers as a member until expiry.
//   - Pulls never fail with SUBSCRIPTION_NOT_EXIST; without a known
//     subscription nothing is filtered (the client re-filters by tag).
//   - Offsets committed by pulls only move forward; UPDATE_CONSUMER_OFFSET
//     and SetOffset may move them back.
//   - SQL92 subscriptions are not evaluated (everything matches).
//   - No CHECK_TRANSACTION_STATE callbacks, no retention, no slaves.
//
// # Fast tests with rocketmq-client-go v2.1.2 (measured on 2 cores)
//
//   - A push consumer's Start returns in ~3 ms and its first message is
//     consumed ~20–80 ms after the send: Start fetches routes, heartbeats and
//     rebalances immediately, and the first pull long-polls.
//   - The client's rebalance timer is a hard-coded 20 s (and heartbeats
//     30 s, route refresh 30 s, offset persist 5 s after a 10 s delay); none
//     has an option. WithRebalanceLockInterval only affects orderly
//     consumers' lock renewal. What makes rebalancing fast is the fake's
//     NOTIFY_CONSUMER_IDS_CHANGED: a second consumer joining, or one
//     shutting down, rebalances the group within milliseconds (the test
//     sees a takeover of the queues ~50 ms after Shutdown).
//   - Keep PullInterval at its default 0; with long polling it costs
//     nothing. Options.MaxLongPoll only matters for raw-protocol tests.
//   - Retries: consumer.WithMaxReconsumeTimes(n) (sent with every
//     CONSUMER_SEND_MSG_BACK) makes a poison message reach %DLQ%<group> after
//     n+1 deliveries; with immediate delay levels that takes milliseconds.
//   - After Stop/Start the producer recovers on its next send; the consumer
//     within ~1–3 s (its pull error back-off is 3 s). Stop answers parked
//     pulls first, so no pull sits on a dead socket.
//   - DropConnections (or any abrupt connection loss) is the slow path: an
//     in-flight pull is only abandoned at its 30 s timeout, so that queue
//     stalls ~33 s. Sends in flight likewise wait out their 3 s.
//
// # rocketmq-client-go v2.1.2 pitfalls seen while building this
//
//   - Clients in one process are shared by ClientID = ip@InstanceName. With
//     the default instance name every producer and consumer in a test
//     binary is the same rmqClient (one connection, one heartbeat, one
//     ClientID): a second consumer of a group fails with "the consumer group
//     exist already", a second producer of a group with ErrProducerCreated,
//     and two consumers could never split queues. Always set
//     WithInstanceName/WithInstance to something unique.
//   - push consumer Start fails ("route info not found") if the name server
//     cannot be reached or does not know the topic at that moment; it does
//     not retry. Producers are lazier: they resolve routes on first send.
//   - The name server address must be a literal IP:port (the resolver
//     rejects host names); use primitive.NamesrvAddr{fake.NamesrvAddr()}.
//   - On connection loss in-flight requests are not failed; each waits for
//     its own timeout (pull 30 s, send 3 s per attempt, heartbeat 3 s).
//   - SendSync retries RetryTimes (default 2) times at once, without
//     back-off, and only for TOPIC_NOT_EXIST, SERVICE_NOT_AVAILABLE,
//     SYSTEM_ERROR and NO_PERMISSION responses or transport errors; a
//     connection refused fails all attempts in microseconds, SYSTEM_BUSY is
//     returned as "CODE: 2 ...". Callers need their own retry loop.
//   - CONSUMER_SEND_MSG_BACK's response code is ignored: if the broker
//     refuses, the message is silently considered handled. Only a transport
//     error makes the client retry consumption locally (after 5 s).
//   - UPDATE_CONSUMER_OFFSET is fire-and-forget: Shutdown returns before the
//     broker has the final offsets. Poll Offset/Offsets in tests.
//   - The consume callback runs concurrently: up to ConsumeGoroutineNums
//     (20) batches at once, several from the same queue. Guard shared state.
//   - PULL_OFFSET_MOVED makes the consumer drop the queue, sleep 10 s and
//     wait for the next rebalance (up to 20 s).
//   - An error answer to GET_CONSUMER_LIST_BY_GROUP (a real broker sends
//     SYSTEM_ERROR when it knows no member of the group, e.g. right after
//     its restart) is read as an empty list: the consumer drops every queue
//     until the next rebalance, 20 s later. The fake avoids sending it while
//     the consumer is a member (see ClientExpiry above).
//   - Orderly consumers (WithConsumerOrder) take their first message ~3 s
//     after Start: the queue lock taken while creating the process queue is
//     not recorded on it, so the first pull backs off 3 s until lockAll
//     (1 s after Start, then every RebalanceLockInterval) marks it locked.
//   - The Go client never sends UNREGISTER_CLIENT; the broker learns of a
//     departure only from the closed socket.
//   - go test -race reports a data race inside the client
//     (SubscriptionData.SubVersion written by a rebalance while the route
//     updater clones it) in practically every test that starts a push
//     consumer; it is not in this package.
//   - The client logs through logrus at info level by default; use
//     rlog.SetLogLevel("error") or rlog.SetLogger with a quiet logger.
//   - Shutdown does not wait for the client's goroutines; some linger for a
//     while (goleak-style checks will trip).
package rocketmqfake
