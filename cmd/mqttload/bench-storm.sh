#!/usr/bin/env bash
# bench-storm.sh — connect storm (issue 15): CLIENTS clients, WORKERS at a
# time, connect and stay connected, into Debian's mosquitto (persistence
# false) and into `presenced serve` (every connect event fsync'd to the
# outbox before its CONNACK, stored in its private PostgreSQL), alternated
# in each round, each broker started fresh (presenced on a fresh data
# directory) for its round:
#   mosquitto        storm alone (it has no REST view)
#   presenced        storm, polling POST /clients/online from the storm's
#                    start until all are online, then closing all and
#                    polling until all are offline
#   presenced-quiet  storm alone, without the poller, to show what the
#                    poller costs the broker on the same cores
#   presenced-tmpfs  (TMPFS_ROUND=1 only) presenced-quiet with its data
#                    directory on /dev/shm, where fdatasync costs nothing: a
#                    diagnostic of what the disk flush costs, not a durable
#                    setup
#
#   cmd/mqttload/bench-storm.sh            # from the repository root; ~2 minutes
#   ROUNDS=5 CLIENTS=5000 WORKERS=50 cmd/mqttload/bench-storm.sh
#
# Loopback only. The load tool holds one descriptor per client, the broker
# another: ulimit -n 20000. Raw output, with the load average before each
# run and the outbox's group-commit counters after each presenced run,
# goes to $OUT/raw.txt.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-5000}
WORKERS=${WORKERS:-50}
MOSQ_PORT=${MOSQ_PORT:-22883}
PRES_MQTT_PORT=${PRES_MQTT_PORT:-22884}
PRES_HTTP_PORT=${PRES_HTTP_PORT:-22880}
TMPFS_ROUND=${TMPFS_ROUND:-0}
OUT=${OUT:-$(mktemp -d /tmp/mqttbench-storm.XXXXXX)}

cd "$(dirname "$0")/../.."
ulimit -n 20000
mkdir -p "$OUT"
RAW=$OUT/raw.txt
: >"$RAW"

if ! command -v mosquitto >/dev/null; then
	echo "bench-storm.sh: mosquitto not found; install it: apt-get install -y mosquitto" >&2
	exit 1
fi

echo "building into $OUT" >&2
if [ -z "${PRESENCED_BIN:-}" ]; then
	go build -o "$OUT/presenced" ./cmd/presenced
	PRESENCED_BIN=$OUT/presenced
fi
go build -o "$OUT/mqttload" ./cmd/mqttload
LOAD=$OUT/mqttload

# As in bench.sh: anonymous clients, no connection cap, no persistence, no
# logging, TCP_NODELAY (Go sets it by default).
printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_connections -1\npersistence false\nlog_dest none\nset_tcp_nodelay true\n' \
	"$MOSQ_PORT" >"$OUT/mosquitto.conf"

. cmd/mqttload/benchlib.sh
require_free_ports "$MOSQ_PORT" "$PRES_MQTT_PORT" "$PRES_HTTP_PORT"
start_mosquitto() {
	start_broker "$OUT/mosquitto.log" mosquitto -c "$OUT/mosquitto.conf"
	wait_port "$MOSQ_PORT" "$OUT/mosquitto.log"
}
DATA=
start_presenced() { # data-dir
	DATA=$1
	rm -rf "$DATA"
	start_broker "$OUT/presenced.log" "$PRESENCED_BIN" serve --mqtt-addr 127.0.0.1:$PRES_MQTT_PORT \
		--http-addr 127.0.0.1:$PRES_HTTP_PORT --data-dir "$DATA" --node bench
	wait_ready "http://127.0.0.1:$PRES_HTTP_PORT/readyz" "$OUT/presenced.log"
}
stop_all() {
	stop_broker
	if [ -n "$DATA" ]; then rm -rf "$DATA"; DATA=; fi
}
trap stop_all EXIT

# outbox_counters: records appended and group commits so far.
outbox_counters() {
	curl -fs "http://127.0.0.1:$PRES_HTTP_PORT/metrics" |
		awk '$1=="presenced_outbox_appends_total"{a=$2} $1=="presenced_outbox_fsyncs_total"{f=$2} END{printf "%d %d", a, f}'
}

storm() { # label args…
	local label=$1
	shift
	echo "\$ mqttload storm $* ($(uptime | sed 's/.*load/load/'))" >>"$RAW"
	timeout 600 "$LOAD" storm -n "$CLIENTS" -workers "$WORKERS" -duration 2m -pid "$BROKER_PID" -label "$label" "$@" 2>&1 | tee -a "$RAW" >&2 || true
}

round() { # broker-name
	case $1 in
	mosquitto)
		start_mosquitto
		storm mosquitto -mqtt 127.0.0.1:$MOSQ_PORT
		;;
	presenced | presenced-quiet | presenced-tmpfs)
		if [ "$1" = presenced-tmpfs ]; then start_presenced "/dev/shm/storm-bench-$$"; else start_presenced "$OUT/data"; fi
		local before after http=()
		if [ "$1" = presenced ]; then http=(-http 127.0.0.1:$PRES_HTTP_PORT); fi
		before=$(outbox_counters)
		storm "$1" -mqtt 127.0.0.1:$PRES_MQTT_PORT "${http[@]}"
		after=$(outbox_counters)
		echo "$before $after" | awk -v l="$1" '{r=$3-$1; f=$4-$2; printf "  outbox %s: %d records in %d group commits: %.1f records per fsync (storm and close)\n", l, r, f, (f ? r/f : 0)}' | tee -a "$RAW" >&2
		;;
	esac
	stop_all
}

for r in $(seq "$ROUNDS"); do
	echo "## round $r of $ROUNDS ($(uptime | sed 's/.*load/load/'))" | tee -a "$RAW" >&2
	round mosquitto
	round presenced
	round presenced-quiet
	if [ "$TMPFS_ROUND" = 1 ]; then round presenced-tmpfs; fi
done

median() { sort -n | awk '{v[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print v[(NR+1)/2]; else printf "%.0f\n", (v[NR/2]+v[NR/2+1])/2}'; }
rate() { grep -F "storm $1:" "$RAW" | grep -oE '[0-9]+ connects/s' | awk '{print $1}' | median; }
{
	echo
	echo "connect storm, $CLIENTS clients, $WORKERS workers, medians of $ROUNDS alternating rounds ($(nproc) cores; raw output in $RAW)"
	echo "mosquitto $(rate mosquitto) connects/s; presenced (REST poller running) $(rate presenced); presenced-quiet $(rate presenced-quiet); presenced-tmpfs $(rate presenced-tmpfs)"
} | tee -a "$RAW"
