# benchlib.sh — what the bench-*.sh scripts share, sourced by them (not
# run): the broker under test runs in the background as BROKER_PID;
# wait_port and wait_ready wait (60 s at most) for it, stop_broker ends it.
# Each script says what its own brokers are and how they start, and calls
# require_free_ports with its ports first: a leftover broker on one of them
# would answer in place of the one under test (which exits, unable to
# listen), and the figures would be of the wrong process.

BROKER_PID=

# start_broker LOG COMMAND…: runs COMMAND in the background as the broker,
# its output appended to LOG.
start_broker() {
	local log=$1
	shift
	"$@" >>"$log" 2>&1 &
	BROKER_PID=$!
}

# require_free_ports PORT…: the bench stops before it starts if something
# already listens on 127.0.0.1:PORT.
require_free_ports() {
	local port
	for port in "$@"; do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$(basename "$0"): something already listens on 127.0.0.1:$port (a leftover broker or bench?); stop it first" >&2
			exit 1
		fi
	done
}

# alive PID LOG: the bench stops if process PID has exited (it could not
# listen, or failed to start).
alive() {
	if ! kill -0 "$1" 2>/dev/null; then
		echo "$(basename "$0"): process $1 exited while starting; see $2" >&2
		tail -n 5 "$2" >&2
		exit 1
	fi
}

# wait_port PORT LOG [PID]: until something accepts on 127.0.0.1:PORT,
# while PID (the broker's by default) runs.
wait_port() {
	for _ in $(seq 600); do
		alive "${3:-$BROKER_PID}" "$2"
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "$(basename "$0"): nothing listens on port $1; see $2" >&2
	exit 1
}

# wait_ready URL LOG: until URL answers 2xx (presenced's /readyz), while the
# broker runs.
wait_ready() {
	for _ in $(seq 600); do
		alive "$BROKER_PID" "$2"
		if curl -fs "$1" >/dev/null 2>&1; then return 0; fi
		sleep 0.1
	done
	echo "$(basename "$0"): $1 did not answer; see $2" >&2
	exit 1
}

# stop_broker: SIGTERM, 30 s for a graceful stop, then SIGKILL.
stop_broker() {
	if [ -n "$BROKER_PID" ]; then
		kill -TERM "$BROKER_PID" 2>/dev/null || true
		for _ in $(seq 300); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$BROKER_PID" 2>/dev/null || true
		wait "$BROKER_PID" 2>/dev/null || true
		BROKER_PID=
	fi
}
