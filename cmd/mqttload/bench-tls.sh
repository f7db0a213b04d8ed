#!/usr/bin/env bash
# bench-tls.sh — MQTT over TLS: presenced's TLS listener side by side with
# Debian's mosquitto TLS listener (default, then with set_tcp_nodelay
# true), same RSA-2048 server certificate, same load tool, TLS 1.3:
#   idle-rss      IDLE_CONNS idle TLS connections (CONNECT/CONNACK, then silence)
#   connect-rate  CONNECTS full handshakes + CONNECT/CONNACK/DISCONNECT, WORKERS at a time
#
#   cmd/mqttload/bench-tls.sh     # from the repository root; a few minutes
#
# presenced runs twice: `serve` (outbox, consumer and private PostgreSQL:
# every event stored) and `broker` (outbox only, forwarding to the RocketMQ
# test double), which separates the cost of TLS from the cost of storing.
#
# The clients run in the mqttload process, so each broker holds one
# descriptor per connection. Raw output goes to $OUT/raw.txt.
set -euo pipefail

IDLE_CONNS=${IDLE_CONNS:-10000}
CONNECTS=${CONNECTS:-5000}
WORKERS=${WORKERS:-50}
ROUNDS=${ROUNDS:-1}
KEY=${KEY:-rsa}
# SIGNERS: the --tls-rsa-signer values presenced runs with, each a column
# (presenced-auto, presenced-go, ...): "auto go" compares OpenSSL's RSA
# signature with Go's in one run.
SIGNERS=${SIGNERS:-auto}
MOSQ_PORT=${MOSQ_PORT:-28883}
PRES_MQTT_PORT=${PRES_MQTT_PORT:-21894}
PRES_MQTTS_PORT=${PRES_MQTTS_PORT:-28884}
PRES_HTTP_PORT=${PRES_HTTP_PORT:-21890}
FAKE_NAMESRV_PORT=${FAKE_NAMESRV_PORT:-19887}
FAKE_BROKER_PORT=${FAKE_BROKER_PORT:-10922}
OUT=${OUT:-$(mktemp -d /tmp/mqttbench-tls.XXXXXX)}

cd "$(dirname "$0")/../.."
ulimit -n 20000
mkdir -p "$OUT"
RAW=$OUT/raw.txt
: >"$RAW"

echo "building into $OUT" >&2
go build -o "$OUT/presenced" ./cmd/presenced
go build -o "$OUT/mqttload" ./cmd/mqttload
go build -o "$OUT/rocketmqfake" ./test/rocketmqfake/cmd/rocketmqfake
LOAD=$OUT/mqttload

# CA and server certificate for 127.0.0.1: RSA-2048 (KEY=rsa, the
# default) or ECDSA P-256 (KEY=ec), whose signature per handshake costs a
# fraction of RSA's in either broker.
case "$KEY" in
rsa) NEWKEY=rsa:2048 ;;
ec)
	openssl ecparam -name prime256v1 -out "$OUT/p256.pem"
	NEWKEY=ec:$OUT/p256.pem
	;;
*) echo "bench-tls.sh: KEY must be rsa or ec" >&2; exit 2 ;;
esac
openssl req -x509 -newkey "$NEWKEY" -nodes -keyout "$OUT/ca.key" -out "$OUT/ca.pem" -days 2 -subj /CN=bench-ca 2>/dev/null
openssl req -newkey "$NEWKEY" -nodes -keyout "$OUT/server.key" -out "$OUT/server.csr" -subj /CN=127.0.0.1 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$OUT/san.ext"
openssl x509 -req -in "$OUT/server.csr" -CA "$OUT/ca.pem" -CAkey "$OUT/ca.key" -CAcreateserial \
	-out "$OUT/server.pem" -days 2 -extfile "$OUT/san.ext" 2>/dev/null
chmod 600 "$OUT/server.key"
# mosquitto started as root drops to the user mosquitto, which could not
# read the key: keep root for the benchmark.
MOSQ_USER=
if [ "$(id -u)" = 0 ]; then MOSQ_USER="user root"; fi

mosq_conf() { # extra-line
	printf '%s\nper_listener_settings false\nallow_anonymous true\nmax_connections -1\npersistence false\nlog_dest none\n%s\nlistener %s 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\ntls_version tlsv1.3\n' \
		"$MOSQ_USER" "$1" "$MOSQ_PORT" "$OUT/ca.pem" "$OUT/server.pem" "$OUT/server.key"
}
mosq_conf "" >"$OUT/mosquitto.conf"
mosq_conf "set_tcp_nodelay true" >"$OUT/mosquitto-nodelay.conf"

. cmd/mqttload/benchlib.sh
require_free_ports "$MOSQ_PORT" "$PRES_MQTT_PORT" "$PRES_MQTTS_PORT" "$PRES_HTTP_PORT" "$FAKE_NAMESRV_PORT" "$FAKE_BROKER_PORT"
start_mosquitto() { # config
	start_broker "$OUT/mosquitto.log" /usr/sbin/mosquitto -c "$1"
	wait_port "$MOSQ_PORT" "$OUT/mosquitto.log"
}
start_presenced() { # signer
	rm -rf "$OUT/data"
	start_broker "$OUT/presenced.log" "$OUT/presenced" serve --tls-rsa-signer "$1" --mqtt-addr 127.0.0.1:$PRES_MQTT_PORT --http-addr 127.0.0.1:$PRES_HTTP_PORT \
		--mqtts-addr 127.0.0.1:$PRES_MQTTS_PORT --mqtt-tls-cert "$OUT/server.pem" --mqtt-tls-key "$OUT/server.key" \
		--data-dir "$OUT/data" --node bench
	wait_ready "http://127.0.0.1:$PRES_HTTP_PORT/readyz" "$OUT/presenced.log"
}
FAKE_PID=
start_presenced_broker() { # signer
	rm -rf "$OUT/data"
	"$OUT/rocketmqfake" -namesrv-addr 127.0.0.1:$FAKE_NAMESRV_PORT -broker-addr 127.0.0.1:$FAKE_BROKER_PORT >>"$OUT/fake.log" 2>&1 &
	FAKE_PID=$!
	wait_port "$FAKE_NAMESRV_PORT" "$OUT/fake.log" "$FAKE_PID"
	start_broker "$OUT/presenced-broker.log" "$OUT/presenced" broker --tls-rsa-signer "$1" --mqtt-addr 127.0.0.1:$PRES_MQTT_PORT --http-addr 127.0.0.1:$PRES_HTTP_PORT \
		--mqtts-addr 127.0.0.1:$PRES_MQTTS_PORT --mqtt-tls-cert "$OUT/server.pem" --mqtt-tls-key "$OUT/server.key" \
		--rocketmq-namesrv 127.0.0.1:$FAKE_NAMESRV_PORT --data-dir "$OUT/data" --node bench
	wait_port "$PRES_MQTTS_PORT" "$OUT/presenced-broker.log"
}
stop_all() { # the broker, then the RocketMQ double it forwards to
	stop_broker
	if [ -n "$FAKE_PID" ]; then
		kill "$FAKE_PID" 2>/dev/null || true
		wait "$FAKE_PID" 2>/dev/null || true
		FAKE_PID=
	fi
}
trap stop_all EXIT

run_one() { # label start-command port
	"$2" "${4:-}"
	"$LOAD" idle-rss -mqtt 127.0.0.1:$3 -tls-ca "$OUT/ca.pem" -pid "$BROKER_PID" -n "$IDLE_CONNS" -workers 16 -label "$1" | tee -a "$RAW"
	"$LOAD" connect-rate -mqtt 127.0.0.1:$3 -tls-ca "$OUT/ca.pem" -workers "$WORKERS" -max "$CONNECTS" -duration 5m -label "$1" | tee -a "$RAW"
	stop_all
}

for _ in $(seq "$ROUNDS"); do
	run_one mosquitto start_mosquitto "$MOSQ_PORT" "$OUT/mosquitto.conf"
	run_one mosquitto-nodelay start_mosquitto "$MOSQ_PORT" "$OUT/mosquitto-nodelay.conf"
	for signer in $SIGNERS; do
		run_one "presenced-$signer" start_presenced "$PRES_MQTTS_PORT" "$signer"
		run_one "presenced-broker-$signer" start_presenced_broker "$PRES_MQTTS_PORT" "$signer"
	done
done
echo "raw results: $RAW" >&2
