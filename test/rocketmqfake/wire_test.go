package rocketmqfake

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// TestRecordDecodesWithClient: the pull record layout is what the real
// client's decoder reads, for IPv4 and IPv6 hosts.
func TestRecordDecodesWithClient(t *testing.T) {
	for _, hosts := range [][2]string{{"10.1.2.3:5555", "127.0.0.1:10911"}, {"[2001:db8::1]:5555", "[::1]:10911"}} {
		m := &storedMsg{
			topic: "t1", queueID: 3, queueOffset: 42, phyOffset: 123456, flag: 7, sysFlag: 0,
			bornTS: 1700000000000, bornHost: parseHostPort(hosts[0]), storeTS: 1700000000500,
			storeHost: parseHostPort(hosts[1]), reconsumeTimes: 2, body: []byte("hello"),
		}
		m.setProps(map[string]string{"TAGS": "connect", "KEYS": "k1 k2", "UNIQ_KEY": "ABC"})
		wire := m.appendRecord(m.appendRecord(nil))
		got := primitive.DecodeMessage(wire)
		if len(got) != 2 {
			t.Fatalf("decoded %d messages", len(got))
		}
		d := got[0]
		if d.Topic != "t1" || d.Queue.QueueId != 3 || d.QueueOffset != 42 || d.CommitLogOffset != 123456 ||
			d.Flag != 7 || d.BornTimestamp != 1700000000000 || d.StoreTimestamp != 1700000000500 ||
			d.ReconsumeTimes != 2 || string(d.Body) != "hello" || d.GetTags() != "connect" ||
			d.GetKeys() != "k1 k2" || d.MsgId != "ABC" || d.StoreSize != int32(len(wire)/2) {
			t.Errorf("decoded %+v", d)
		}
		// The client prints only the first 4 bytes of an IPv6 host, so
		// compare hosts for IPv4 only.
		if !m.bornHost.v6() && (d.BornHost != hosts[0] || d.StoreHost != hosts[1]) {
			t.Errorf("hosts %q %q", d.BornHost, d.StoreHost)
		}
		if d.OffsetMsgId != m.offsetMsgID() {
			t.Errorf("offset msg id %s, want %s", d.OffsetMsgId, m.offsetMsgID())
		}
	}
}

// TestBatchBody: the producer's batch encoding splits back into messages.
func TestBatchBody(t *testing.T) {
	a := primitive.NewMessage("t", []byte("one"))
	a.WithTag("connect")
	b := primitive.NewMessage("t", []byte("two"))
	b.WithKeys([]string{"k"})
	items, err := decodeBatch(producer.MarshalMessageBatch(a, b))
	if err != nil || len(items) != 2 {
		t.Fatalf("items %v err %v", items, err)
	}
	if string(items[0].body) != "one" || parseProperties(items[0].props)["TAGS"] != "connect" ||
		string(items[1].body) != "two" || parseProperties(items[1].props)["KEYS"] != "k" {
		t.Errorf("items %+v", items)
	}
	if _, err := decodeBatch([]byte{0, 0, 0, 9, 1}); err == nil {
		t.Error("garbage batch accepted")
	}
}

// rawClient speaks the remoting protocol directly, for what the Go client
// cannot be made to send.
type rawClient struct {
	t      *testing.T
	c      net.Conn
	r      *bufio.Reader
	opaque int32
	// pushed keeps the commands the server sent on its own (notifications)
	// while call waited for its response, for next to return in order.
	pushed []*command
}

// next returns the next command the server sent on its own: one that
// arrived while call waited, or else the next on the wire.
func (rc *rawClient) next() (*command, error) {
	if len(rc.pushed) > 0 {
		cmd := rc.pushed[0]
		rc.pushed = rc.pushed[1:]
		return cmd, nil
	}
	return readCommand(rc.r)
}

func dialRaw(t *testing.T, addr string) *rawClient {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, c: c, r: bufio.NewReader(c)}
}

func (rc *rawClient) call(code int16, serialize byte, ext map[string]string, body []byte) *command {
	rc.t.Helper()
	rc.opaque++
	req := &command{Code: code, Version: 317, Opaque: rc.opaque, ExtFields: ext, Body: body, serialize: serialize}
	frame, err := req.encode()
	if err != nil {
		rc.t.Fatal(err)
	}
	_ = rc.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := rc.c.Write(frame); err != nil {
		rc.t.Fatal(err)
	}
	for {
		resp, err := readCommand(rc.r)
		if err != nil {
			rc.t.Fatalf("read response to %s: %v", RequestName(code), err)
		}
		if resp.isResponse() && resp.Opaque == rc.opaque {
			if resp.serialize != serialize {
				rc.t.Errorf("answered in serialize type %d, asked in %d", resp.serialize, serialize)
			}
			return resp
		}
		if !resp.isResponse() {
			rc.pushed = append(rc.pushed, resp)
		}
	}
}

// TestRawProtocol: both header encodings, unknown codes, broker-side tag
// filtering with PULL_RETRY_IMMEDIATELY, long polling, offsets.
func TestRawProtocol(t *testing.T) {
	f := New(Options{MaxLongPoll: time.Second})
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ns := dialRaw(t, f.NamesrvAddr())
	br := dialRaw(t, f.BrokerAddr())

	for _, ser := range []byte{serializeJSON, serializeRocketMQ} {
		resp := ns.call(ReqGetRouteInfoByTopic, ser, map[string]string{"topic": "raw"}, nil)
		var route topicRouteData
		if resp.Code != ResSuccess || json.Unmarshal(resp.Body, &route) != nil ||
			route.QueueDatas[0].ReadQueueNums != 4 || route.BrokerDatas[0].BrokerAddrs[0] != f.BrokerAddr() {
			t.Fatalf("route: %d %s", resp.Code, resp.Body)
		}
		if resp := br.call(999, ser, nil, nil); resp.Code != ResRequestCodeNotSupported {
			t.Errorf("unknown code answered %d", resp.Code)
		}
	}

	br2 := dialRaw(t, f.BrokerAddr()) // for sends concurrent with a pull
	send := func(tag, body string) {
		props := formatProperties(map[string]string{"TAGS": tag})
		resp := br2.call(ReqSendMessageV2, serializeRocketMQ, map[string]string{
			"a": "pg", "b": "raw", "e": "0", "f": "0", "g": "1", "h": "0", "i": props, "j": "0", "m": "false",
		}, []byte(body))
		if resp.Code != ResSuccess {
			t.Errorf("send: %d %s", resp.Code, resp.Remark)
		}
	}
	pull := func(offset int64, expr string) (*command, time.Duration) {
		start := time.Now()
		resp := br.call(ReqPullMessage, serializeJSON, map[string]string{
			"consumerGroup": "g", "topic": "raw", "queueId": "0", "queueOffset": strconv.FormatInt(offset, 10),
			"maxMsgNums": "32", "sysFlag": strconv.Itoa(pullFlagSuspend | pullFlagSubscription | pullFlagCommitOffset),
			"commitOffset": strconv.FormatInt(offset, 10), "suspendTimeoutMillis": "20000",
			"subscription": expr, "expressionType": "TAG",
		}, nil)
		return resp, time.Since(start)
	}

	// Caught up: held for MaxLongPoll, then PULL_NOT_FOUND.
	resp, took := pull(0, "connect")
	if resp.Code != ResPullNotFound || took < 900*time.Millisecond {
		t.Errorf("empty pull: code %d after %v", resp.Code, took)
	}
	// Only non-matching messages: PULL_RETRY_IMMEDIATELY past them.
	send("other", "x")
	send("", "y")
	resp, _ = pull(0, "connect")
	if resp.Code != ResPullRetryImmediately || resp.ext("nextBeginOffset") != "2" {
		t.Errorf("filtered pull: %d next=%s", resp.Code, resp.ext("nextBeginOffset"))
	}
	// A long-polling pull is answered as soon as a matching message lands.
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		time.Sleep(100 * time.Millisecond)
		send("connect", "z")
	}()
	resp, took = pull(2, "connect || tcpclean")
	<-sent
	msgs := primitive.DecodeMessage(resp.Body)
	if resp.Code != ResSuccess || len(msgs) != 1 || string(msgs[0].Body) != "z" || resp.ext("nextBeginOffset") != "3" {
		t.Errorf("woken pull: %d %d msgs next=%s", resp.Code, len(msgs), resp.ext("nextBeginOffset"))
	}
	if took > 900*time.Millisecond {
		t.Errorf("woken pull took %v: not woken by the send", took)
	}
	// Beyond the end: PULL_OFFSET_MOVED back to max.
	if resp, _ = pull(10, "*"); resp.Code != ResPullOffsetMoved || resp.ext("nextBeginOffset") != "3" {
		t.Errorf("overflow pull: %d next=%s", resp.Code, resp.ext("nextBeginOffset"))
	}
	// The pulls committed their offsets (forward only).
	if got := f.Offset("g", "raw", 0); got != 10 {
		t.Errorf("committed offset %d", got)
	}
	for code, want := range map[int16]string{ReqGetMaxOffset: "3", ReqGetMinOffset: "0"} {
		if resp := br.call(code, serializeJSON, map[string]string{"topic": "raw", "queueId": "0"}, nil); resp.ext("offset") != want {
			t.Errorf("%s = %s, want %s", RequestName(code), resp.ext("offset"), want)
		}
	}
	resp = br.call(ReqQueryConsumerOffset, serializeJSON, map[string]string{"consumerGroup": "new", "topic": "raw", "queueId": "0"}, nil)
	if resp.Code != ResSuccess || resp.ext("offset") != "0" {
		t.Errorf("new group offset: %d %s", resp.Code, resp.ext("offset"))
	}
	if !bytes.Equal(f.Messages("raw")[2].Body, []byte("z")) {
		t.Error("inspection")
	}
}

// TestRawMembership: heartbeats register group members, a new member makes
// the broker push NOTIFY_CONSUMER_IDS_CHANGED to the others, and
// UNREGISTER_CLIENT / a closed socket remove members.
func TestRawMembership(t *testing.T) {
	f := New(Options{})
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	heartbeat := func(rc *rawClient, id string) {
		body, _ := json.Marshal(map[string]any{
			"clientID": id, "producerDataSet": []any{},
			"consumerDataSet": []any{map[string]any{"groupName": "g", "consumeType": "CONSUME_PASSIVELY",
				"messageModel": "CLUSTERING", "subscriptionDataSet": []any{
					map[string]any{"topic": "t", "subString": "connect||tcpclean", "expressionType": "TAG"}}}},
		})
		if resp := rc.call(ReqHeartBeat, serializeJSON, nil, body); resp.Code != ResSuccess {
			t.Fatalf("heartbeat: %d %s", resp.Code, resp.Remark)
		}
	}
	a := dialRaw(t, f.BrokerAddr())
	heartbeat(a, "127.0.0.1@a")
	b := dialRaw(t, f.BrokerAddr())
	heartbeat(b, "127.0.0.1@b")
	if ids := f.ConsumerIDs("g"); len(ids) != 2 {
		t.Fatalf("ids %v", ids)
	}
	// a is notified of its own join and of b's. The first may have come
	// while a waited for its heartbeat's response: call keeps it.
	_ = a.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	notified := 0
	for notified < 2 {
		cmd, err := a.next()
		if err != nil {
			break
		}
		if cmd.Code == ReqNotifyConsumerIdsChanged && !cmd.isResponse() && cmd.isOneway() && cmd.ext("consumerGroup") == "g" {
			notified++
		}
	}
	if notified != 2 {
		t.Errorf("a got %d notifications, want 2 (own join, b's join)", notified)
	}
	if expr, _ := f.Subscription("g", "t"); expr != "connect||tcpclean" {
		t.Errorf("subscription %q", expr)
	}
	if resp := b.call(ReqUnregisterClient, serializeJSON, map[string]string{"clientID": "127.0.0.1@b", "consumerGroup": "g"}, nil); resp.Code != ResSuccess {
		t.Fatalf("unregister: %d", resp.Code)
	}
	if ids := f.ConsumerIDs("g"); len(ids) != 1 || ids[0] != "127.0.0.1@a" {
		t.Errorf("after unregister: %v", ids)
	}
	a.c.Close() // the client going away itself: it leaves at once
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := WaitFor(ctx, func() bool { return len(f.ConsumerIDs("g")) == 0 }); err != nil {
		t.Errorf("after close: %v", f.ConsumerIDs("g"))
	}
	if resp := b.call(ReqGetConsumerListByGroup, serializeJSON, map[string]string{"consumerGroup": "g"}, nil); resp.Code != ResSystemError {
		t.Errorf("empty group answered %d", resp.Code)
	}
}
