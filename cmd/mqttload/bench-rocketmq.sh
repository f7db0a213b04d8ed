#!/usr/bin/env bash
# Measures the scaled-out path on loopback: presenced broker -> RocketMQ
# test double -> presenced consumer -> PostgreSQL, read by presenced api.
#
#   1. drain rate: a backlog of lifecycle events is built in RocketMQ while
#      the consumer is stopped, then the consumer is started and the rate at
#      which events land in Postgres is measured (events/s into the store);
#   2. sustained rate: churn load with the consumer running;
#   3. abrupt close -> online:false over REST through the whole path.
#
# Usage: cmd/mqttload/bench-rocketmq.sh [churn-seconds]   (run as root; needs PostgreSQL 15 binaries)
# DRAIN_ONLY=1, FROM_OUTBOX=1 and PG_OPTS="-c setting=value" are described below.
# Everything listens on 127.0.0.1 and is stopped at exit; total time a few minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_LOAD=${1:-20}
WORK=$(mktemp -d /tmp/bench-rocketmq.XXXX)
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
PGPORT=55439
DB="postgres://postgres@127.0.0.1:$PGPORT/presenced"
psqlc() { psql -h "$WORK/pg" -p $PGPORT -U postgres -d presenced -tAc "$1"; }

cleanup() {
	# presenced first (the broker's last events still reach the fake), then
	# the fake; each gets 30 s before SIGKILL, so that no process outlives
	# the run and holds a port the next run needs.
	for pattern in "$WORK/presenced" "$WORK/rocketmqfake"; do
		pkill -TERM -f "$pattern" 2>/dev/null || true
		for _ in $(seq 1 150); do pgrep -f "$pattern" >/dev/null || break; sleep 0.2; done
		pkill -KILL -f "$pattern" 2>/dev/null || true
	done
	su postgres -c "$PGBIN/pg_ctl -D $WORK/pg/data stop -m fast" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

for port in 18090 18091 18092 18893 19877 10912 $PGPORT; do
	if ss -ltnH "sport = :$port" | grep -q .; then
		echo "127.0.0.1:$port is in use (a previous run still stopping?); stop it first" >&2
		exit 1
	fi
done
go build -o "$WORK/presenced" ./cmd/presenced
go build -o "$WORK/mqttload" ./cmd/mqttload
go build -o "$WORK/rocketmqfake" ./test/rocketmqfake/cmd/rocketmqfake

mkdir -p "$WORK/pg" && chown postgres "$WORK/pg" && chmod o+x "$WORK"
su postgres -c "$PGBIN/initdb -D $WORK/pg/data -A trust >/dev/null && $PGBIN/pg_ctl -D $WORK/pg/data -l $WORK/pg/log -o '-p $PGPORT -k $WORK/pg -c listen_addresses=127.0.0.1 -c max_connections=200 -c track_wal_io_timing=on ${PG_OPTS:-}' start >/dev/null && $PGBIN/createdb -h $WORK/pg -p $PGPORT presenced"

RMQ="--rocketmq-namesrv 127.0.0.1:19877 --rocketmq-topic bench_events"
start_fake() { "$WORK/rocketmqfake" -namesrv-addr 127.0.0.1:19877 -broker-addr 127.0.0.1:10912 >>"$WORK/fake.log" 2>&1 & }
start_fake
sleep 1
start_consumer() { "$WORK/presenced" consumer --http-addr 127.0.0.1:18091 --database-url "$DB" --data-dir "$WORK/c" $RMQ >>"$WORK/consumer.log" 2>&1 & }
"$WORK/presenced" broker --mqtt-addr 127.0.0.1:18893 --http-addr 127.0.0.1:18092 --data-dir "$WORK/b" --node bench $RMQ >"$WORK/broker.log" 2>&1 &
start_consumer
# DRAIN_ONLY=1: only the drain rate (FROM_OUTBOX=1: of a backlog in the broker's outbox), without the API process following the store
if [ "${DRAIN_ONLY:-0}" = 0 ]; then
	"$WORK/presenced" api --http-addr 127.0.0.1:18090 --database-url "$DB" --data-dir "$WORK/a" >"$WORK/api.log" 2>&1 &
else
	sleep 1
fi
# wait_ready PORT: the process's /readyz answers within 20 s, or the bench stops.
wait_ready() {
	for _ in $(seq 1 100); do curl -sf "127.0.0.1:$1/readyz" >/dev/null && return 0; sleep 0.2; done
	echo "nothing ready on 127.0.0.1:$1 after 20 s; logs in $WORK" >&2
	tail -n 5 "$WORK"/*.log >&2
	exit 1
}
wait_ready 18091
wait_ready 18092

# applied: events the consumer has stored (newly or as duplicates), read from its
# /metrics — cheap, unlike counting the events table, which would slow the drain.
applied() {
	curl -sf 127.0.0.1:18091/metrics | awk '/^presenced_events_(applied|duplicate)_total /{n+=$2} END{printf "%d\n", n}'
}

# wait_stable: poll until the consumer has stored nothing for 3 s (at most 10 min).
wait_stable() {
	local prev=-1 same=0 n
	for _ in $(seq 1 ${STABLE_TRIES:-1200}); do
		n=$(applied || echo -1)
		if [ "$n" = "$prev" ] && [ "$n" -gt 0 ]; then same=$((same + 1)); else same=0; fi
		[ $same -ge 6 ] && break
		prev=$n; [ -n "${TRACE:-}" ] && echo "$(date +%s.%N) $n outbox=$(curl -sf 127.0.0.1:18092/metrics | awk '/^presenced_outbox_backlog_records /{print $2}')" >&2
		sleep 0.5
	done
	if [ "$n" -le 0 ]; then
		echo "the consumer stored nothing in 10 minutes; logs kept in /tmp/bench-rocketmq-failed" >&2
		rm -rf /tmp/bench-rocketmq-failed && mkdir -p /tmp/bench-rocketmq-failed && cp "$WORK"/*.log /tmp/bench-rocketmq-failed/
		exit 1
	fi
	echo "$n"
}

if [ "${FROM_OUTBOX:-0}" = 0 ]; then
	echo "== 1. drain rate: backlog in RocketMQ, then the consumer starts"
	pkill -TERM -f "$WORK/presenced consumer"; sleep 3
	"$WORK/mqttload" churn -mqtt 127.0.0.1:18893 -workers 200 -duration "${SECONDS_LOAD}s"
	sleep 3
	psqlc "SELECT pg_stat_reset_shared('wal')" >/dev/null
	t0=$(date +%s.%N)
	start_consumer
else
	# FROM_OUTBOX=1: RocketMQ is down while the load runs, so the backlog
	# builds in the broker's outbox; then the double and the consumer start
	# and all three stages run at once: outbox -> double -> consumer -> store.
	echo "== 1. drain rate: backlog in the broker's outbox, then RocketMQ and the consumer start"
	pkill -TERM -f "$WORK/presenced consumer"; pkill -TERM -f "$WORK/rocketmqfake"; sleep 3
	"$WORK/mqttload" churn -mqtt 127.0.0.1:18893 -workers 200 -duration "${SECONDS_LOAD}s"
	sleep 3
	psqlc "SELECT pg_stat_reset_shared('wal')" >/dev/null
	t0=$(date +%s.%N)
	start_fake
	sleep 0.3
	start_consumer
fi
wait_ready 18091
# The first stored events mark the end of start-up (the double, the
# consumer's rebalance, the forwarder's reconnection backoff): the steady
# rate is counted from there, from the count seen then.
for _ in $(seq 1 600); do first=$(applied || echo 0); [ "$first" -gt 0 ] && break; sleep 0.1; done
tfirst=$(date +%s.%N)
before=0
after=$(wait_stable)
t1=$(date +%s.%N)
drain=$(echo "($t1 - $t0 - 3)" | bc -l)
steady=$(echo "($t1 - $tfirst - 3)" | bc -l)
echo "drained $((after - before)) events in ${drain}s: $(echo "($after - $before) / $drain" | bc) events/s into PostgreSQL, start-up included"
echo "steady: $((after - first)) events in ${steady}s from the first stored one: $(echo "($after - $first) / $steady" | bc) events/s"
curl -sf 127.0.0.1:18091/metrics | awk '/^presenced_consumer_batch_size_(sum|count) /{v[$1]=$2} END{if (v["presenced_consumer_batch_size_count"]>0) printf "store transactions: %d, mean %.0f events each\n", v["presenced_consumer_batch_size_count"], v["presenced_consumer_batch_size_sum"]/v["presenced_consumer_batch_size_count"]}'
psqlc "SELECT format('WAL: %s records, %s full-page images, %s written, %s fsyncs taking %s ms', wal_records, wal_fpi, pg_size_pretty(wal_bytes), wal_sync, round(wal_sync_time)) FROM pg_stat_wal"
psqlc "SELECT format('rows: %s %s inserted, %s updated (%s HOT)', relname, n_tup_ins, n_tup_upd, n_tup_hot_upd) FROM pg_stat_user_tables WHERE relname IN ('events', 'channels') ORDER BY relname"
[ "${DRAIN_ONLY:-0}" = 0 ] || exit 0
wait_ready 18090

echo "== 2. sustained: churn with the consumer running"
before=$(applied)
t0=$(date +%s.%N)
"$WORK/mqttload" churn -mqtt 127.0.0.1:18893 -workers 200 -duration "${SECONDS_LOAD}s"
after=$(wait_stable)
t1=$(date +%s.%N)
total=$(echo "($t1 - $t0 - 3)" | bc -l)
echo "stored $((after - before)) events in ${total}s (load + drain): $(echo "($after - $before) / $total" | bc) events/s end to end"

echo "== 3. abrupt close -> online:false over REST (presenced api), through RocketMQ"
"$WORK/mqttload" offline-latency -mqtt 127.0.0.1:18893 -http 127.0.0.1:18090 -n 100
