package rocketmqfake

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"testing"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// benchBatch is a SEND_BATCH_MESSAGE body as rocketmq-client-go encodes
// it: n ~250-byte JSON events with a tag, a key and a unique id each.
func benchBatch(topic string, n int) []byte {
	msgs := make([]*primitive.Message, n)
	for i := range msgs {
		body := fmt.Sprintf(`{"eventType":"connect","clientId":"GID_bench@@@device-%06d","channelId":"chan-%06d",`+
			`"clientIp":"10.1.2.3","time":1700000000000,"certificationType":"token","node":"bench-node-1",`+
			`"epoch":"01HZX3Y7Q9","seq":%d,"payloadPadding":"xxxxxxxxxxxxxxxxxxxxxxxx"}`, i, i, i)
		m := primitive.NewMessage(topic, []byte(body))
		m.WithTag([]string{"connect", "disconnect", "tcpclean"}[i%3])
		m.WithKeys([]string{fmt.Sprintf("chan-%06d", i)})
		m.WithProperty(propUniqKey, primitive.CreateUniqID())
		msgs[i] = m
	}
	return producer.MarshalMessageBatch(msgs...)
}

// benchConn is a broker-side conn whose answers go over loopback TCP to a
// reader that discards them, so replies cost what they cost in a load test.
func benchConn(b *testing.B) *conn {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(io.Discard, client)
	}()
	b.Cleanup(func() {
		server.Close()
		<-done
		client.Close()
	})
	return &conn{nc: server, server: serverBroker, remote: client.LocalAddr().String(), closed: make(chan struct{})}
}

// BenchmarkSendPull measures the double's own work for one batch of 256
// messages: SEND_BATCH_MESSAGE stored and answered, then pulled by a
// tag-filtering consumer 256 at a time and answered (request decoding is
// left out). The store grows as in a load test; it is replaced every
// storeReset batches so memory stays bounded. Figures are steadiest with
// -benchtime 2000x, one run per process (-count 1): each run then grows
// one store from empty, paying for fresh memory as the double does, where
// later runs in the same process reuse what earlier ones freed.
func BenchmarkSendPull(b *testing.B) {
	const (
		topic, batch = "bench_events", 256
		storeReset   = 2000
	)
	body := benchBatch(topic, batch)
	c := benchConn(b)
	send := &command{Code: ReqSendBatchMessage, serialize: serializeJSON, Body: body, ExtFields: map[string]string{
		"a": "presenced-producer", "b": topic, "e": "0", "f": "0", "g": "1700000000000", "h": "0",
		"i": "", "j": "0", "m": "true",
	}}
	pullExt := func(offset int) map[string]string {
		return map[string]string{
			"consumerGroup": "presenced-consumer", "topic": topic, "queueId": "0",
			"queueOffset": strconv.Itoa(offset), "maxMsgNums": strconv.Itoa(batch),
			"sysFlag":      strconv.Itoa(pullFlagSuspend | pullFlagSubscription | pullFlagCommitOffset),
			"commitOffset": strconv.Itoa(offset), "suspendTimeoutMillis": "20000",
			"subscription": "connect||disconnect||tcpclean", "expressionType": "TAG",
		}
	}
	var f *Fake
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%storeReset == 0 {
			b.StopTimer()
			f = New(Options{})
			c.f = f
			b.StartTimer()
		}
		resp := f.handleSend(c, send)
		if resp.Code != ResSuccess {
			b.Fatalf("send: %d %s", resp.Code, resp.Remark)
		}
		f.reply(c, send, resp)
		pull := &command{Code: ReqPullMessage, serialize: serializeJSON, ExtFields: pullExt(i % storeReset * batch)}
		resp = f.handlePull(c, pull, nil)
		if resp.Code != ResSuccess {
			b.Fatalf("pull: %d %s", resp.Code, resp.Remark)
		}
		f.reply(c, pull, resp)
	}
	b.StopTimer()
	// What the store keeps per message is what a long load test pays in
	// page faults and GC work.
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc)/float64(((b.N-1)%storeReset+1)*batch), "live-B/msg")
	runtime.KeepAlive(f)
}
