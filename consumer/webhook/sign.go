package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// Headers of a delivery.
const (
	// HeaderSignature is "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body)).
	HeaderSignature = "X-Presenced-Signature"
	// HeaderTimestamp is the Unix time (s) of the attempt, part of what is
	// signed, so that a receiver can refuse replays of old requests.
	HeaderTimestamp = "X-Presenced-Timestamp"
	// HeaderDelivery is the batch's id (Delivery.ID), the same on retries.
	HeaderDelivery = "X-Presenced-Delivery"
)

// Signature returns the X-Presenced-Signature value of body sent at
// timestamp (Unix seconds) under secret.
func Signature(secret []byte, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(strconv.FormatInt(timestamp, 10)))
	mac.Write([]byte("."))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}
