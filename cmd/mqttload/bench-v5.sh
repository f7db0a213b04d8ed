#!/usr/bin/env bash
# bench-v5.sh — MQTT 5.0 beside MQTT 3.1.1, for presenced serve and Debian's
# mosquitto, on loopback, in one run: for each round and broker, a fresh
# broker per protocol level (4, then 5) runs
#   idle-rss      IDLE_CONNS idle connections (CONNECT/CONNACK, then silence)
#   connect-rate  CONNECT_SECONDS of CONNECT/CONNACK/DISCONNECT cycles, CONNECT_WORKERS at a time
#                 (presenced: until every event is stored)
#
#   cmd/mqttload/bench-v5.sh           # from the repository root; a few minutes
#
# Raw output goes to $OUT/raw.txt.
set -euo pipefail

ROUNDS=${ROUNDS:-2}
IDLE_CONNS=${IDLE_CONNS:-10000}
CONNECT_SECONDS=${CONNECT_SECONDS:-10}
CONNECT_WORKERS=${CONNECT_WORKERS:-50}
MOSQ_PORT=${MOSQ_PORT:-23883}
PRES_MQTT_PORT=${PRES_MQTT_PORT:-23884}
PRES_HTTP_PORT=${PRES_HTTP_PORT:-23880}
OUT=${OUT:-$(mktemp -d /tmp/mqttbench-v5.XXXXXX)}

cd "$(dirname "$0")/../.."
ulimit -n 20000
mkdir -p "$OUT"
RAW=$OUT/raw.txt
: >"$RAW"

echo "building into $OUT" >&2
go build -o "$OUT/presenced" ./cmd/presenced
go build -o "$OUT/mqttload" ./cmd/mqttload
LOAD=$OUT/mqttload

# mosquitto as in bench.sh: anonymous, no connection cap, no persistence,
# no logging, TCP_NODELAY (Go's default).
printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_connections -1\npersistence false\nlog_dest none\nset_tcp_nodelay true\n' \
	"$MOSQ_PORT" >"$OUT/mosquitto.conf"

. cmd/mqttload/benchlib.sh
require_free_ports "$MOSQ_PORT" "$PRES_MQTT_PORT" "$PRES_HTTP_PORT"
start_mosquitto() {
	start_broker "$OUT/mosquitto.log" /usr/sbin/mosquitto -c "$OUT/mosquitto.conf"
	wait_port "$MOSQ_PORT" "$OUT/mosquitto.log"
}
start_presenced() {
	rm -rf "$OUT/data"
	start_broker "$OUT/presenced.log" "$OUT/presenced" serve --mqtt-addr 127.0.0.1:$PRES_MQTT_PORT \
		--http-addr 127.0.0.1:$PRES_HTTP_PORT --data-dir "$OUT/data" --node bench
	wait_ready "http://127.0.0.1:$PRES_HTTP_PORT/readyz" "$OUT/presenced.log"
}
trap stop_broker EXIT

one() { # broker protocol
	local broker=$1 level=$2 addr metrics=()
	if [ "$broker" = presenced ]; then
		start_presenced
		addr=127.0.0.1:$PRES_MQTT_PORT
		metrics=(-metrics "http://127.0.0.1:$PRES_HTTP_PORT/metrics")
	else
		start_mosquitto
		addr=127.0.0.1:$MOSQ_PORT
	fi
	"$LOAD" idle-rss -mqtt "$addr" -pid "$BROKER_PID" -n "$IDLE_CONNS" -protocol "$level" -label "$broker-v$level" | tee -a "$RAW"
	"$LOAD" connect-rate -mqtt "$addr" -duration "${CONNECT_SECONDS}s" -workers "$CONNECT_WORKERS" -protocol "$level" \
		"${metrics[@]}" -label "$broker-v$level" | tee -a "$RAW"
	stop_broker
}

for r in $(seq "$ROUNDS"); do
	echo "## round $r of $ROUNDS ($(uptime | sed 's/.*load/load/'))" | tee -a "$RAW"
	for broker in mosquitto presenced; do
		one "$broker" 4
		one "$broker" 5
	done
done
echo "raw results: $RAW" >&2
