package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// pubsub measures fan-in throughput: publishers send messages on their own
// topic, one subscriber receives them all through a wildcard subscription.
// Each publisher keeps at most window messages between publishing and the
// subscriber's receipt (and, at QoS 1, the PUBACK), so the subscriber
// always keeps up and nothing may be dropped: every message must arrive,
// once, in order per publisher. The payload carries the publisher's index
// and a sequence number to check that.
func pubsub(ctx context.Context, fs *flag.FlagSet, args []string, out io.Writer) error {
	mqttAddr := fs.String("mqtt", "127.0.0.1:1883", "broker address (loopback only)")
	qos := fs.Int("qos", 0, "QoS of the messages and the subscription: 0 or 1")
	publishers := fs.Int("publishers", 10, "publishing clients (at most 100)")
	total := fs.Int("n", 1_000_000, "messages in all (at most 100,000,000)")
	size := fs.Int("size", 64, "payload bytes (12 to 65536)")
	window := fs.Int("window", 50, "messages each publisher may have undelivered (at most 10000)")
	duration := fs.Duration("duration", time.Minute, "give up after this long (at most 10m)")
	label := fs.String("label", "", "name of the broker in the result line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkLoopback(*mqttAddr); err != nil {
		return err
	}
	if *qos != 0 && *qos != 1 {
		return fmt.Errorf("-qos must be 0 or 1, not %d", *qos)
	}
	*publishers = min(max(*publishers, 1), 100)
	*total = min(max(*total, *publishers), 100_000_000)
	*size = min(max(*size, 12), 65536)
	*window = min(max(*window, 1), 10000)
	*duration = min(max(*duration, time.Second), 10*time.Minute)
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()

	run := &pubsubRun{
		addr:      *mqttAddr,
		topicRoot: fmt.Sprintf("mqttload/%d-%d", os.Getpid(), time.Now().UnixNano()),
		qos:       byte(*qos),
		window:    int64(*window),
		size:      *size,
		pubs:      make([]publisherState, *publishers),
	}
	for i := range run.pubs {
		run.pubs[i].quota = int64(*total / *publishers)
		if i < *total%*publishers {
			run.pubs[i].quota++
		}
		run.pubs[i].wake = make(chan struct{}, 1)
	}
	sub, err := run.subscribe()
	if err != nil {
		return err
	}
	defer sub.Close()
	conns := make([]net.Conn, len(run.pubs))
	for i := range conns {
		conn, _, err := mqttDial(run.addr, nil, fmt.Sprintf("%s-pub%d", run.topicRoot, i), 60, 5*time.Second, nil)
		if err != nil {
			return err
		}
		defer conn.Close()
		conns[i] = conn
	}
	// A deadline on every socket ends every loop when the time is up.
	deadline, _ := ctx.Deadline()
	sub.SetDeadline(deadline)
	for _, c := range conns {
		c.SetDeadline(deadline)
	}

	start := time.Now()
	received := make(chan subscriberResult, 1)
	go func() { received <- run.receive(sub, int64(*total)) }()
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = run.publish(ctx, i, c)
		}()
	}
	res := <-received
	elapsed := time.Since(start)
	cancel() // stops publishers stuck on a lost message
	wg.Wait()

	fmt.Fprintf(out, "pubsub qos%d %s: %d publishers -> 1 subscriber, %d B payloads, window %d/publisher: %d of %d delivered in %v: %.0f msg/s; %d duplicates, %d out of order\n",
		*qos, *label, len(conns), *size, *window, res.count, *total, elapsed.Round(time.Millisecond),
		float64(res.count)/elapsed.Seconds(), res.duplicates, res.gaps)
	if res.err != nil {
		return fmt.Errorf("subscriber: %w", res.err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("publishers: %w", err)
	}
	if res.duplicates > 0 || res.gaps > 0 {
		return fmt.Errorf("%d messages duplicated, %d out of order", res.duplicates, res.gaps)
	}
	return nil
}

type pubsubRun struct {
	addr      string
	topicRoot string
	qos       byte
	window    int64
	size      int
	pubs      []publisherState
}

// publisherState is shared by a publisher, its PUBACK reader and the
// subscriber.
type publisherState struct {
	quota    int64
	received atomic.Int64  // messages the subscriber has got
	acked    atomic.Int64  // PUBACKs the publisher has got (QoS 1)
	wake     chan struct{} // a counter moved
}

func (p *publisherState) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// subscribe connects the subscriber and subscribes to every publisher's
// topic.
func (r *pubsubRun) subscribe() (net.Conn, error) {
	sub, _, err := mqttDial(r.addr, nil, r.topicRoot+"-sub", 60, 5*time.Second, nil)
	if err != nil {
		return nil, err
	}
	sub.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := sub.Write(appendSubscribe(nil, 1, r.topicRoot+"/#", r.qos)); err != nil {
		sub.Close()
		return nil, fmt.Errorf("send SUBSCRIBE: %w", err)
	}
	var ack [5]byte
	if _, err := io.ReadFull(sub, ack[:]); err != nil || ack[0] != mqttSuback || ack[4] != r.qos {
		sub.Close()
		return nil, fmt.Errorf("SUBACK % x: %v", ack, err)
	}
	return sub, nil
}

type subscriberResult struct {
	count      int64
	duplicates int64 // a sequence number seen before
	gaps       int64 // a sequence number ahead of the next expected
	err        error
}

// receive reads until want messages arrived, checking each publisher's
// sequence, acknowledging QoS 1 messages one batch per read.
func (r *pubsubRun) receive(sub net.Conn, want int64) subscriberResult {
	var res subscriberResult
	next := make([]int64, len(r.pubs)) // expected sequence number per publisher
	buf := make([]byte, 256<<10)
	var acks []byte
	have := 0
	for res.count < want {
		n, err := sub.Read(buf[have:])
		have += n
		if n == 0 && err != nil {
			res.err = err
			return res
		}
		used := 0
		for {
			first, body, size, err := nextPacket(buf[used:have])
			if errors.Is(err, errShortPacket) {
				break
			}
			if err != nil {
				res.err = err
				return res
			}
			used += size
			if first>>4 != mqttPublish>>4 {
				continue
			}
			payload, id, ok := splitPublish(first, body)
			if !ok || len(payload) < 12 {
				res.err = fmt.Errorf("malformed PUBLISH % x", body)
				return res
			}
			if (first>>1)&3 > 0 {
				acks = appendPuback(acks, id)
			}
			pub := int(binary.BigEndian.Uint32(payload))
			seq := int64(binary.BigEndian.Uint64(payload[4:]))
			if pub >= len(r.pubs) {
				res.err = fmt.Errorf("PUBLISH from unknown publisher %d", pub)
				return res
			}
			switch {
			case seq < next[pub]:
				res.duplicates++
			case seq > next[pub]:
				res.gaps++
			}
			next[pub] = max(next[pub], seq+1)
			res.count++
		}
		if used == 0 && have == len(buf) {
			res.err = fmt.Errorf("packet larger than %d bytes", len(buf))
			return res
		}
		have = copy(buf, buf[used:have])
		if len(acks) > 0 {
			if _, err := sub.Write(acks); err != nil {
				res.err = fmt.Errorf("send PUBACK: %w", err)
				return res
			}
			acks = acks[:0]
		}
		for i := range r.pubs {
			if p := &r.pubs[i]; p.received.Load() != next[i] {
				p.received.Store(next[i])
				p.poke()
			}
		}
	}
	return res
}

// splitPublish returns the payload and packet id of a PUBLISH body.
func splitPublish(first byte, body []byte) (payload []byte, id uint16, ok bool) {
	if len(body) < 2 {
		return nil, 0, false
	}
	rest := body[2+int(binary.BigEndian.Uint16(body)):]
	if (first>>1)&3 > 0 {
		if len(rest) < 2 {
			return nil, 0, false
		}
		id, rest = binary.BigEndian.Uint16(rest), rest[2:]
	}
	return rest, id, true
}

// publish sends publisher i's quota, in batches as large as its window
// allows.
func (r *pubsubRun) publish(ctx context.Context, i int, conn net.Conn) error {
	p := &r.pubs[i]
	if r.qos > 0 {
		go r.readAcks(p, conn)
	}
	topic := r.topicRoot + "/" + strconv.Itoa(i)
	payload := make([]byte, r.size)
	binary.BigEndian.PutUint32(payload, uint32(i))
	var batch []byte
	id := uint16(0)
	for sent := int64(0); sent < p.quota; {
		done := p.received.Load()
		if r.qos > 0 {
			done = min(done, p.acked.Load())
		}
		allowed := min(r.window-(sent-done), p.quota-sent, 1000)
		if allowed <= 0 {
			select {
			case <-p.wake:
			case <-ctx.Done():
				return fmt.Errorf("publisher %d: %d of %d messages sent, %d delivered: %w", i, sent, p.quota, done, ctx.Err())
			}
			continue
		}
		batch = batch[:0]
		for range allowed {
			binary.BigEndian.PutUint64(payload[4:], uint64(sent))
			if id++; id == 0 {
				id = 1
			}
			batch = appendPublish(batch, topic, r.qos, id, payload)
			sent++
		}
		if _, err := conn.Write(batch); err != nil {
			return fmt.Errorf("publisher %d: send PUBLISH: %w", i, err)
		}
	}
	return nil
}

// readAcks counts the PUBACKs a QoS 1 publisher receives until its
// connection closes or its deadline passes.
func (r *pubsubRun) readAcks(p *publisherState, conn net.Conn) {
	buf := make([]byte, 64<<10)
	have := 0
	var acked int64
	for acked < p.quota {
		n, err := conn.Read(buf[have:])
		have += n
		if n == 0 && err != nil {
			return
		}
		used := 0
		for {
			first, _, size, err := nextPacket(buf[used:have])
			if err != nil {
				break
			}
			used += size
			if first == mqttPuback {
				acked++
			}
		}
		have = copy(buf, buf[used:have])
		p.acked.Store(acked)
		p.poke()
	}
}
