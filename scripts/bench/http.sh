#!/bin/sh
# HTTP benchmark: GET /healthz over keep-alive connections with wrk.
#
# Starts the daemon on a free loopback port (port 0, read back from the
# "listening" log line), runs wrk against it, prints one summary line with
# requests/s and the p99 latency, and stops the daemon (SIGTERM).
#
# Environment:
#   BUILD         build folder holding smsrules (default: build)
#   SMSRULES_BIN  the binary (default: $BUILD/smsrules)
#   THREADS CONNECTIONS DURATION   wrk settings (default: 2, 64, 10s)
#   PIN=1         pin the daemon to CPU 0 and wrk to CPU 1 (taskset)
#   WRK           the wrk binary (default: wrk)
set -eu

BUILD=${BUILD:-build}
BIN=${SMSRULES_BIN:-$BUILD/smsrules}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-10s}
PIN=${PIN:-0}
WRK=${WRK:-wrk}

if [ ! -x "$BIN" ]; then
    echo "http.sh: no daemon at $BIN (run make, or set SMSRULES_BIN)" >&2
    exit 1
fi
if ! command -v "$WRK" >/dev/null 2>&1; then
    echo "http.sh: wrk is not installed (apt-get install wrk)" >&2
    exit 1
fi

daemon_pin=""
wrk_pin=""
if [ "$PIN" = 1 ]; then
    daemon_pin="taskset -c 0"
    wrk_pin="taskset -c 1"
fi

work=$(mktemp -d)
pid=""
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

mkdir "$work/data"
# shellcheck disable=SC2086 # $daemon_pin is a command prefix or empty
$daemon_pin "$BIN" serve --listen 127.0.0.1:0 --data "$work/data" --log-level info 2>"$work/daemon.log" &
pid=$!

# Wait for the listening line (a deadline, not a fixed sleep).
port=""
tries=0
while [ -z "$port" ]; do
    port=$(sed -n 's/.*"msg":"listening".*"port":\([0-9][0-9]*\).*/\1/p' "$work/daemon.log" | head -n 1)
    [ -n "$port" ] && break
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "http.sh: the daemon exited:" >&2
        cat "$work/daemon.log" >&2
        exit 1
    fi
    tries=$((tries + 1))
    if [ "$tries" -gt 500 ]; then
        echo "http.sh: the daemon did not start listening within 5 s" >&2
        exit 1
    fi
    sleep 0.01
done

url="http://127.0.0.1:$port/healthz"
# shellcheck disable=SC2086
$wrk_pin "$WRK" -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$url" >"$work/wrk.out" 2>&1 || {
    cat "$work/wrk.out" >&2
    exit 1
}

rps=$(sed -n 's/^Requests\/sec:[[:space:]]*\([0-9.]*\).*/\1/p' "$work/wrk.out")
p99=$(sed -n 's/^[[:space:]]*99%[[:space:]]*\([0-9.]*[a-z]*\).*/\1/p' "$work/wrk.out")
errors=$(sed -n 's/^[[:space:]]*Socket errors: \(.*\)/\1/p; s/^[[:space:]]*Non-2xx or 3xx responses: \(.*\)/non-2xx \1/p' "$work/wrk.out" | tr '\n' ' ')

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=""

pinned="unpinned"
[ "$PIN" = 1 ] && pinned="daemon cpu0, wrk cpu1"
printf 'http.sh: GET /healthz keep-alive t=%s c=%s d=%s (%s): %s requests/s, p99 %s%s\n' \
    "$THREADS" "$CONNECTIONS" "$DURATION" "$pinned" "${rps:-?}" "${p99:-?}" "${errors:+, errors: $errors}"
if [ "$rc" -ne 0 ]; then
    echo "http.sh: the daemon exited $rc after SIGTERM" >&2
    exit 1
fi
if [ -z "$rps" ]; then
    cat "$work/wrk.out" >&2
    exit 1
fi
