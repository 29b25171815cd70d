# Shared by the benchmark scripts (sourced, not run): start the daemon on a
# free loopback port, find its port from the "listening" log line, run wrk,
# stop the daemon. Environment: BUILD (default build), SMSRULES_BIN,
# THREADS CONNECTIONS DURATION (wrk; default 2, 64, 10s), PIN=1 (daemon on
# CPU 0, wrk on CPU 1), WRK (default wrk).

BUILD=${BUILD:-build}
BIN=${SMSRULES_BIN:-$BUILD/smsrules}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-10s}
PIN=${PIN:-0}
WRK=${WRK:-wrk}
NAME=${NAME:-bench}

if [ ! -x "$BIN" ]; then
    echo "$NAME: no daemon at $BIN (run make, or set SMSRULES_BIN)" >&2
    exit 1
fi
if ! command -v "$WRK" >/dev/null 2>&1; then
    echo "$NAME: wrk is not installed (apt-get install wrk)" >&2
    exit 1
fi

daemon_pin=""
wrk_pin=""
pinned="unpinned"
if [ "$PIN" = 1 ]; then
    daemon_pin="taskset -c 0"
    wrk_pin="taskset -c 1"
    pinned="daemon cpu0, wrk cpu1"
fi

work=$(mktemp -d)
pid=""
bench_cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap bench_cleanup EXIT INT TERM

# bench_start [serve arguments...]: starts the daemon, sets $port and $pid.
bench_start() {
    mkdir -p "$work/data"
    # Empty before the start: the loop below must not read a previous daemon's line, nor a missing file.
    : >"$work/daemon.log"
    # shellcheck disable=SC2086 # $daemon_pin is a command prefix or empty
    $daemon_pin "$BIN" serve --listen 127.0.0.1:0 --data "$work/data" --log-level info "$@" 2>"$work/daemon.log" &
    pid=$!
    port=""
    tries=0
    while [ -z "$port" ]; do
        port=$(sed -n 's/.*"msg":"listening".*"port":\([0-9][0-9]*\).*/\1/p' "$work/daemon.log" | head -n 1)
        [ -n "$port" ] && break
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "$NAME: the daemon exited:" >&2
            cat "$work/daemon.log" >&2
            exit 1
        fi
        tries=$((tries + 1))
        if [ "$tries" -gt 500 ]; then
            echo "$NAME: the daemon did not start listening within 5 s" >&2
            exit 1
        fi
        sleep 0.01
    done
}

# daemon_cpu_ticks: the daemon's user + system CPU time so far, in clock ticks.
daemon_cpu_ticks() {
    # /proc/PID/stat: the command is in parentheses and may hold spaces; utime
    # and stime are the 12th and 13th fields after it.
    sed 's/^.*) //' "/proc/$pid/stat" | awk '{ print $12 + $13 }'
}

# bench_wrk URL [wrk arguments...]: runs wrk, sets $rps, $p99, $errors, and
# $cpu_us: the daemon's CPU time (all its threads) per answered request, in
# microseconds. Throughput on a shared 2-core VM swings with fsync latency
# and neighbours; CPU per request moves much less, so compare changes by it.
bench_wrk() {
    url=$1
    shift
    cpu_before=$(daemon_cpu_ticks)
    # shellcheck disable=SC2086
    $wrk_pin "$WRK" -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url" >"$work/wrk.out" 2>&1 || {
        cat "$work/wrk.out" >&2
        exit 1
    }
    rps=$(sed -n 's/^Requests\/sec:[[:space:]]*\([0-9.]*\).*/\1/p' "$work/wrk.out")
    cpu_after=$(daemon_cpu_ticks)
    requests=$(sed -n 's/^[[:space:]]*\([0-9][0-9]*\) requests in .*/\1/p' "$work/wrk.out")
    cpu_us=$(awk -v a="$cpu_before" -v b="$cpu_after" -v n="${requests:-0}" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { if (n > 0) printf "%.1f", (b - a) * 1e6 / hz / n; else print "?" }')
    p99=$(sed -n 's/^[[:space:]]*99%[[:space:]]*\([0-9.]*[a-z]*\).*/\1/p' "$work/wrk.out")
    errors=$(sed -n 's/^[[:space:]]*Socket errors: \(.*\)/\1/p; s/^[[:space:]]*Non-2xx or 3xx responses: \(.*\)/non-2xx \1/p' \
        "$work/wrk.out" | tr '\n' ' ')
    if [ -z "$rps" ]; then
        cat "$work/wrk.out" >&2
        exit 1
    fi
}

# bench_stop: SIGTERM, and fail when the daemon does not exit 0.
bench_stop() {
    kill -TERM "$pid"
    rc=0
    wait "$pid" || rc=$?
    pid=""
    if [ "$rc" -ne 0 ]; then
        echo "$NAME: the daemon exited $rc after SIGTERM" >&2
        exit 1
    fi
}
