package rocketmq

import (
	"encoding/binary"

	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// batchMessage encodes msgs (one topic, at least two) into one batch
// message for queue, in the layout of the client's own
// producer.MarshalMessageBatch: per message TOTALSIZE, MAGICCODE (0),
// BODYCRC (0), FLAG (0), BODYSIZE, BODY, PROPERTYSIZE, PROPERTIES, the
// properties as "name\x01value\x02". Given several messages, SendSync
// builds this itself, but through a primitive.Message with a property map
// per event, a fresh buffer per message and a batch buffer grown by
// doubling: most of the forwarder's allocations and a quarter of its CPU
// while draining a backlog. Here the batch is sized once and written in
// place. Given the result alone, SendSync sends it as it is: a batch
// message has no properties of its own and is never compressed.
func batchMessage(msgs []outMessage, queue int) *primitive.Message {
	size := 0
	for _, m := range msgs {
		size += batchItemSize(m)
	}
	body := make([]byte, 0, size)
	for _, m := range msgs {
		body = appendBatchItem(body, m)
	}
	batch := &primitive.Message{Topic: msgs[0].topic, Body: body, Batch: true}
	// The queue the batch was built for, read by channelQueueSelector.
	batch.Queue = &primitive.MessageQueue{Topic: msgs[0].topic, QueueId: queue}
	return batch
}

// batchProperties are the properties of every message, in wire order.
var batchProperties = [...]string{primitive.PropertyTags, primitive.PropertyKeys, primitive.PropertyShardingKey}

func (m outMessage) propertyValues() [len(batchProperties)]string {
	return [...]string{m.tag, m.keys, m.shardingKey}
}

func propertiesSize(m outMessage) int {
	n := 0
	for i, v := range m.propertyValues() {
		n += len(batchProperties[i]) + 1 + len(v) + 1
	}
	return n
}

func batchItemSize(m outMessage) int { return itemSize(m, propertiesSize(m)) }

func itemSize(m outMessage, propsSize int) int {
	return 4 + 4 + 4 + 4 + 4 + len(m.body) + 2 + propsSize
}

func appendBatchItem(b []byte, m outMessage) []byte {
	propsSize := propertiesSize(m)
	be := binary.BigEndian
	b = be.AppendUint32(b, uint32(itemSize(m, propsSize)))
	b = be.AppendUint32(b, 0) // MAGICCODE: the broker fills it in
	b = be.AppendUint32(b, 0) // BODYCRC: likewise
	b = be.AppendUint32(b, 0) // FLAG
	b = be.AppendUint32(b, uint32(len(m.body)))
	b = append(b, m.body...)
	b = be.AppendUint16(b, uint16(propsSize))
	for i, v := range m.propertyValues() {
		b = append(b, batchProperties[i]...)
		b = append(b, 1)
		b = append(b, v...)
		b = append(b, 2)
	}
	return b
}
