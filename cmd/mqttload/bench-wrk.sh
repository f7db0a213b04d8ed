#!/usr/bin/env bash
# bench-wrk.sh — GET /clients/{id}/online under wrk against PostgreSQL's
# cheapest query (pgbench -S, over TCP and the unix socket), same
# concurrency and duration, alternating rounds, in one run.
#
#   cmd/mqttload/bench-wrk.sh        # from the repository root, as root; ~3 minutes
#   COMPARE_BIN=/tmp/presenced-other cmd/mqttload/bench-wrk.sh
#
# COMPARE_BIN: a second presenced binary (another build, for an A/B), served
# beside this tree's on the same database and measured with wrk in the same
# rounds, right after it.
# PERF_OUT: a file for `perf record -g` of this tree's serve during the first
# round's wrk run (6 s of its 8), for `perf report -i "$PERF_OUT"`.
#
# Needs Go, PostgreSQL 15 server binaries and client tools (pgbench, psql),
# and wrk (apt-get install wrk). Loopback only; every run is bounded.
set -euo pipefail
W=${W:-/tmp/benchpg}; PORT=${PORT:-5499}; ROUNDS=${ROUNDS:-3}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
BIN=$(mktemp -d)
go build -o "$BIN/mqttload" ./cmd/mqttload
go build -o "$BIN/presenced" ./cmd/presenced
COMPARE_BIN=${COMPARE_BIN:-}
cleanup() {
	[ -n "${SERVE:-}" ] && kill "$SERVE" 2>/dev/null || true
	[ -n "${SERVE_B:-}" ] && kill "$SERVE_B" 2>/dev/null || true
	su postgres -c "$PGBIN/pg_ctl -D $W/data stop -m fast" >/dev/null 2>&1 || true
}
trap cleanup EXIT
rm -rf $W /tmp/bench-presenced /tmp/bench-presenced-b; mkdir -p $W; chown postgres $W
su postgres -c "$PGBIN/initdb -D $W/data -U postgres --no-locale --auth=trust >/dev/null && $PGBIN/pg_ctl -D $W/data -l $W/log -o '-p $PORT -k $W -c listen_addresses=127.0.0.1 -c shared_buffers=512MB -c max_connections=300' start >/dev/null"
createdb -h 127.0.0.1 -p $PORT -U postgres presenced; createdb -h 127.0.0.1 -p $PORT -U postgres pgbench
pgbench -i -s 10 -q postgres://postgres@127.0.0.1:$PORT/pgbench 2>/dev/null
"$BIN/presenced" migrate --database-url postgres://postgres@127.0.0.1:$PORT/presenced >/dev/null 2>&1
"$BIN/mqttload" seed -database-url postgres://postgres@127.0.0.1:$PORT/presenced -clients 100000 -channels 1000000
"$BIN/presenced" serve --mqtt-addr 127.0.0.1:18830 --http-addr 127.0.0.1:18080 --database-url postgres://postgres@127.0.0.1:$PORT/presenced --data-dir /tmp/bench-presenced --node bench --log-level warn > /tmp/bench-serve.log 2>&1 &
SERVE=$!
for i in $(seq 300); do curl -sf 127.0.0.1:18080/readyz >/dev/null && break; sleep 0.2; done
if [ -n "$COMPARE_BIN" ]; then
  "$COMPARE_BIN" serve --mqtt-addr 127.0.0.1:18831 --http-addr 127.0.0.1:18081 --database-url postgres://postgres@127.0.0.1:$PORT/presenced --data-dir /tmp/bench-presenced-b --node bench-b --log-level warn > /tmp/bench-serve-b.log 2>&1 &
  SERVE_B=$!
  for i in $(seq 300); do curl -sf 127.0.0.1:18081/readyz >/dev/null && break; sleep 0.2; done
fi
curl -s 127.0.0.1:18080/clients/$(psql -h 127.0.0.1 -p $PORT -U postgres -d presenced -tAc "SELECT client_id FROM channels LIMIT 1")/online; echo
LUA=$BIN/seeded.lua
cat > "$LUA" <<'L'
init = function(args) math.randomseed(os.time() + tonumber(string.sub(tostring({}), 8), 16)) end
request = function() return wrk.format("GET", "/clients/GID_bench@@@dev-" .. math.random(0, 99999) .. "/online") end
L
for round in $(seq "$ROUNDS"); do
  echo "== round $round load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo -n "pgbench tcp: "; pgbench -S -c 16 -j 2 -T 8 -n postgres://postgres@127.0.0.1:$PORT/pgbench 2>/dev/null | grep -E "^tps" | head -1
  echo -n "pgbench unix: "; pgbench -S -c 16 -j 2 -T 8 -n "postgres:///pgbench?host=$W&port=$PORT&user=postgres" 2>/dev/null | grep -E "^tps" | head -1
  # With COMPARE_BIN the two builds take turns going first.
  ports=18080; [ -n "$COMPARE_BIN" ] && { [ $((round % 2)) = 1 ] && ports="18080 18081" || ports="18081 18080"; }
  for p in $ports; do
    label=wrk; [ "$p" = 18081 ] && label="wrk COMPARE_BIN"
    if [ -n "${PERF_OUT:-}" ] && [ "$round" = 1 ] && [ "$p" = 18080 ]; then
      (sleep 1; perf record -g -F 1999 -p "$SERVE" -o "$PERF_OUT" -- sleep 6 >/dev/null 2>&1) &
    fi
    echo -n "$label: "; wrk -t2 -c16 -d8s -s "$LUA" http://127.0.0.1:$p | grep -E "Requests/sec|Non-2xx" | tr '\n' ' '; echo
  done
done
curl -s 127.0.0.1:18080/clients/GID_bench@@@dev-7/online; echo
