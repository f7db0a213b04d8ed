#!/usr/bin/env bash
# bench.sh — presenced's bundled MQTT broker side by side with Debian's
# mosquitto, on loopback, same load tool and parameters, alternating runs
# (mosquitto, presenced, mosquitto, presenced, …); prints the medians.
#
#   cmd/mqttload/bench.sh            # from the repository root; about 5 minutes
#   ROUNDS=1 cmd/mqttload/bench.sh   # quicker
#
# Needs Go, PostgreSQL server binaries (presenced serve starts a private
# cluster) and mosquitto (installed with apt-get when missing and run as
# root). Each broker is started fresh for each round and stopped after it.
# Raw output goes to $OUT/raw.txt.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
IDLE_CONNS=${IDLE_CONNS:-10000}
CONNECT_SECONDS=${CONNECT_SECONDS:-10}
CONNECT_WORKERS=${CONNECT_WORKERS:-32}
QOS0_MESSAGES=${QOS0_MESSAGES:-500000}
QOS1_MESSAGES=${QOS1_MESSAGES:-200000}
MOSQ_PORT=${MOSQ_PORT:-21883}
PRES_MQTT_PORT=${PRES_MQTT_PORT:-21884}
PRES_HTTP_PORT=${PRES_HTTP_PORT:-21880}
OUT=${OUT:-$(mktemp -d /tmp/mqttbench.XXXXXX)}

cd "$(dirname "$0")/../.."
ulimit -n 20000
mkdir -p "$OUT"
RAW=$OUT/raw.txt
: >"$RAW"

if ! command -v mosquitto >/dev/null; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		apt-get update -qq && apt-get install -y -qq mosquitto >/dev/null
	else
		echo "bench.sh: mosquitto not found; install it: apt-get install -y mosquitto" >&2
		exit 1
	fi
fi

echo "building into $OUT" >&2
go build -o "$OUT/presenced" ./cmd/presenced
go build -o "$OUT/mqttload" ./cmd/mqttload
LOAD=$OUT/mqttload

# Debian's mosquitto 2.x with what a loopback benchmark needs (anonymous
# clients, no connection cap, no persistence, no logging) and TCP_NODELAY,
# which Go sets by default. mosquitto-inflight0 lifts its per-client QoS 1
# in-flight limit (default 20), without which it stalls in the QoS 1 fan-in.
mosq_conf() { # port extra-line
	printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_connections -1\npersistence false\nlog_dest none\nset_tcp_nodelay true\n%s\n' "$1" "$2"
}
mosq_conf "$MOSQ_PORT" "" >"$OUT/mosquitto.conf"
mosq_conf "$MOSQ_PORT" "max_inflight_messages 0" >"$OUT/mosquitto-inflight0.conf"

. cmd/mqttload/benchlib.sh
require_free_ports "$MOSQ_PORT" "$PRES_MQTT_PORT" "$PRES_HTTP_PORT"
start_mosquitto() { # config
	start_broker "$OUT/mosquitto.log" mosquitto -c "$1"
	wait_port "$MOSQ_PORT" "$OUT/mosquitto.log"
}
start_presenced() {
	# A fresh store each round: the presence view loads every known client
	# at start, which would otherwise swell the baseline of later rounds.
	rm -rf "$OUT/data"
	start_broker "$OUT/presenced.log" "$OUT/presenced" serve --mqtt-addr 127.0.0.1:$PRES_MQTT_PORT \
		--http-addr 127.0.0.1:$PRES_HTTP_PORT --data-dir "$OUT/data" --node bench
	wait_ready "http://127.0.0.1:$PRES_HTTP_PORT/healthz" "$OUT/presenced.log"
}
trap stop_broker EXIT

load() { # label args…: run one scenario, keep its output
	local label=$1
	shift
	echo "\$ mqttload $*" >>"$RAW"
	timeout 180 "$LOAD" "$@" -label "$label" 2>&1 | tee -a "$RAW" >&2 || true
}

round() { # broker-name
	local name=$1 addr metrics=()
	case $name in
	presenced)
		start_presenced
		addr=127.0.0.1:$PRES_MQTT_PORT
		metrics=(-metrics "http://127.0.0.1:$PRES_HTTP_PORT/metrics")
		;;
	mosquitto)
		start_mosquitto "$OUT/mosquitto.conf"
		addr=127.0.0.1:$MOSQ_PORT
		;;
	mosquitto-inflight0)
		start_mosquitto "$OUT/mosquitto-inflight0.conf"
		load "$name" pubsub -mqtt 127.0.0.1:$MOSQ_PORT -qos 1 -n "$QOS1_MESSAGES" -duration 30s
		stop_broker
		return
		;;
	esac
	load "$name" idle-rss -mqtt "$addr" -pid "$BROKER_PID" -n "$IDLE_CONNS" -settle 5s
	load "$name" connect-rate -mqtt "$addr" -duration "${CONNECT_SECONDS}s" -workers "$CONNECT_WORKERS" "${metrics[@]}"
	load "$name" pubsub -mqtt "$addr" -qos 0 -n "$QOS0_MESSAGES" -duration 30s
	load "$name" pubsub -mqtt "$addr" -qos 1 -n "$QOS1_MESSAGES" -duration 30s
	stop_broker
}

for r in $(seq "$ROUNDS"); do
	echo "## round $r of $ROUNDS ($(uptime | sed 's/.*load/load/'))" | tee -a "$RAW" >&2
	round mosquitto
	round presenced
	round mosquitto-inflight0
done

# median of the numbers on stdin (empty: "-")
median() { sort -n | awk '{v[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print v[(NR+1)/2]; else printf "%.2f\n", (v[NR/2]+v[NR/2+1])/2}'; }
# pick label pattern: the number before pattern on lines of one broker
pick() { grep -F "$1 $2:" "$RAW" | grep -oE "[0-9.]+ $3" | awk '{print $1}' | median; }
delivered() { grep -F "pubsub $1 $2:" "$RAW" | grep -oE "[0-9]+ of [0-9]+ delivered" | tr '\n' ',' | sed 's/ delivered//g; s/,$//'; }

{
	echo
	echo "MQTT side by side, medians of $ROUNDS alternating rounds ($(nproc) cores; raw output in $RAW)"
	echo
	echo "| figure | presenced serve | mosquitto $(mosquitto -h 2>/dev/null | head -1 | awk '{print $3}') |"
	echo "|---|---|---|"
	echo "| RSS per idle connection, $IDLE_CONNS idle clients (KiB) | $(pick idle-rss presenced 'KiB per connection') | $(pick idle-rss mosquitto 'KiB per connection') |"
	echo "| connects/s, CONNECT→CONNACK ($CONNECT_WORKERS workers, ${CONNECT_SECONDS}s) | $(pick connect-rate presenced 'connects/s;') | $(pick connect-rate mosquitto 'connects/s;') |"
	echo "| connects/s with every lifecycle event stored in Postgres | $(grep -oE '[0-9.]+ connects/s with every event' "$RAW" | awk '{print $1}' | median) | n/a (stores nothing) |"
	echo "| QoS 0 msg/s, 10 publishers → 1 subscriber, 64 B | $(pick 'pubsub qos0' presenced msg/s) | $(pick 'pubsub qos0' mosquitto msg/s) |"
	echo "| QoS 1 msg/s, 10 publishers → 1 subscriber, 64 B | $(pick 'pubsub qos1' presenced msg/s) | $(pick 'pubsub qos1' mosquitto msg/s) (max_inflight_messages 0: $(pick 'pubsub qos1' mosquitto-inflight0 msg/s)) |"
	echo
	echo "delivered, QoS 0: presenced $(delivered qos0 presenced); mosquitto $(delivered qos0 mosquitto)"
	echo "delivered, QoS 1: presenced $(delivered qos1 presenced); mosquitto $(delivered qos1 mosquitto); mosquitto-inflight0 $(delivered qos1 mosquitto-inflight0)"
} | tee -a "$RAW"
