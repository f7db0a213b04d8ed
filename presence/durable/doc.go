// Package durable holds what presenced's own on-disk logs share — the
// broker's event outbox (consumer/outbox) and the broker's session and
// retained-message store (mqttbroker/persist): the framing of a record
// with its length and CRC-32C, the exclusive lock on a log's directory,
// and the flush that makes written data durable.
package durable
