# Shared by the benchmark scripts (sourced, not run): start the daemon on a
# free loopback port, find its port from the "listening" log line, run wrk,
# start the fake provider (nginx, see fake_provider.py), read metrics, poll a
# condition with a deadline, stop everything. Environment: BUILD (default
# build), SMSRULES_BIN, THREADS CONNECTIONS DURATION (wrk; default 2, 64,
# 10s), PIN=1 (daemon on CPU 0, wrk and nginx on CPU 1), WRK (default wrk).

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
bench_dir=$(dirname "$0")
. "$bench_dir/need.inc"
if [ "$WRK" = wrk ]; then
    bench_need wrk wrk
elif ! command -v "$WRK" >/dev/null 2>&1; then
    echo "$NAME: no wrk at $WRK" >&2
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
# Every other process a script starts (nginx, wrk, Kannel, perf): killed on exit.
bench_pids=""
bench_track() { bench_pids="$bench_pids $1"; }
bench_cleanup() {
    for p in $pid $bench_pids; do
        kill -KILL "$p" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

fail() {
    echo "$NAME: $*" >&2
    exit 1
}

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

# cpu_ticks PID...: the processes' user + system CPU time so far (all their threads), in clock ticks.
cpu_ticks() {
    # /proc/PID/stat: the command is in parentheses and may hold spaces; utime
    # and stime are the 12th and 13th fields after it.
    for p in "$@"; do sed 's/^.*) //' "/proc/$p/stat"; done | awk '{ t += $12 + $13 } END { print t + 0 }'
}

# loop_ticks PID: the CPU ticks of the process's main thread alone (the daemon's
# event loop; the rest of cpu_ticks is the store's writer and helper threads).
loop_ticks() { sed 's/^.*) //' "/proc/$1/task/$1/stat" | awk '{ print $12 + $13 }'; }

# core_pct TICKS MS: TICKS of CPU over MS of wall time, as a percentage of one core.
core_pct() { awk -v t="$1" -v ms="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { if (ms > 0) printf "%.0f", t * 1e5 / hz / ms; else print "?" }'; }

# daemon_cpu_ticks: the daemon's user + system CPU time so far, in clock ticks.
daemon_cpu_ticks() { cpu_ticks "$pid"; }

# us_per TICKS_BEFORE TICKS_AFTER COUNT: CPU microseconds per item ("?" when COUNT is 0).
us_per() {
    awk -v a="$1" -v b="$2" -v n="$3" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { if (n > 0) printf "%.1f", (b - a) * 1e6 / hz / n; else print "?" }'
}

now_ms() { date +%s%3N; }

# rate COUNT MS: COUNT per second over MS milliseconds.
rate() { awk -v n="$1" -v ms="$2" 'BEGIN { if (ms > 0) printf "%.0f", n * 1000 / ms; else print "?" }'; }

# secs MS: milliseconds as seconds with one decimal.
secs() { awk -v ms="$1" 'BEGIN { printf "%.1f", ms / 1000 }'; }

# metric NAME{LABELS}: the daemon's value of one series (0 when absent).
metric() {
    curl -s "http://127.0.0.1:$port/metrics" | awk -v k="$1" '$1 == k { v = $2 } END { printf "%d\n", v + 0 }'
}

# wait_until SECONDS COMMAND...: polls COMMAND every 0.1 s; 1 when it never succeeded.
wait_until() {
    limit=$(($1 * 10))
    shift
    n=0
    until "$@"; do
        n=$((n + 1))
        [ "$n" -ge "$limit" ] && return 1
        sleep 0.1
    done
    return 0
}

# wait_count COUNTER TARGET STALL_S: runs COUNTER (a function that sets
# $count) every 50 ms until $count reaches TARGET; sets $t_reached (ms).
# Returns 1 when the count has not moved for STALL_S seconds, so a slow day
# waits as long as progress is made and a stuck run fails soon.
wait_count() {
    last=-1
    moved=$(now_ms)
    while :; do
        "$1" || count=-1
        t_reached=$(now_ms)
        [ "$count" -ge "$2" ] && return 0
        if [ "$count" != "$last" ]; then
            last=$count
            moved=$t_reached
        elif [ $((t_reached - moved)) -ge $(($3 * 1000)) ]; then
            return 1
        fi
        sleep 0.05
    done
}

# ---- the fake provider: nginx answering a canned JSON (fake_provider.py) ----

fake_pid=""
fake_polls=0

# fake_start: starts nginx on a free loopback port (FAKE_PORT to choose one;
# a busy one fails), sets $fake_port and $fake_pid; killed on exit.
fake_start() {
    bench_need nginx nginx-light
    fake_port=$(python3 "$bench_dir/fake_provider.py" conf "$work/nginx" "${FAKE_PORT:-}") || exit 1
    # shellcheck disable=SC2086 # $wrk_pin is a command prefix or empty
    $wrk_pin nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" >"$work/nginx/out.log" 2>&1 &
    fake_pid=$!
    bench_track "$fake_pid"
    fake_polls=0
    tries=0
    until fake_count; do
        if ! kill -0 "$fake_pid" 2>/dev/null; then
            cat "$work/nginx/out.log" "$work/nginx/error.log" >&2 2>/dev/null || true
            fail "nginx (the fake provider) exited; port $fake_port busy?"
        fi
        tries=$((tries + 1))
        [ "$tries" -gt 500 ] && fail "nginx (the fake provider) did not answer on port $fake_port within 5 s"
        sleep 0.01
    done
}

# fake_count: sets $count to the requests nginx answered on /send and /batch
# (all its requests less our /status polls, which it counts too).
# Sets $fake_conns to the connections it accepted (our polls' included).
fake_count() {
    r=$(curl -s --max-time 10 "http://127.0.0.1:$fake_port/status" | awk 'NR == 3 { print $1, $3 }')
    [ -n "$r" ] || return 1
    fake_polls=$((fake_polls + 1))
    fake_conns=${r% *}
    count=$((${r#* } - fake_polls))
}

# fake_stop: stops nginx.
fake_stop() {
    [ -n "$fake_pid" ] || return 0
    kill -KILL "$fake_pid" 2>/dev/null || true
    wait "$fake_pid" 2>/dev/null || true
    fake_pid=""
}

# load: the machine's load averages (the box is shared: say how busy it was).
load() { awk '{ print $1 ", " $2 ", " $3 }' /proc/loadavg; }

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

# ---- wrk with a fixed number of requests ----

# wrk_quota URL TOTAL LUA [IDLE_PATH]: starts wrk in the background (THREADS,
# CONNECTIONS) so that exactly TOTAL requests are sent over all its threads:
# LUA defines make_request(n, tid) returning wrk.format(...) for the n-th
# request of thread tid (and may define thread_setup(thread, tid), run in
# wrk's setup for each thread); each thread stops after its share and marks itself
# done (any request after that is a GET of IDLE_PATH, default /healthz, which
# the measured counters do not see). Sets $wrk_pid; wrk_quota_wait waits.
wrk_quota() {
    rm -f "$work"/wrk_done.*
    {
        printf 'local total, nthreads, done_dir, idle = %d, %d, "%s", "%s"\n' "$2" "$THREADS" "$work" "${4:-/healthz}"
        cat "$3"
        cat <<'LUA'
local count = 0
function setup(thread)
  count = count + 1
  thread:set("tid", count)
  -- LUA may define thread_setup(thread, tid), e.g. to point the thread at another server (thread.addr).
  if thread_setup then thread_setup(thread, count) end
end
local n, quota, verified = 0, 0, false
function init(args)
  quota = math.floor(total / nthreads) + ((tid <= total % nthreads) and 1 or 0)
end
function request()
  -- wrk calls the first thread's request() once to check it and never sends
  -- that one: give it a request that is not counted.
  if tid == 1 and not verified then
    verified = true
    return wrk.format("GET", idle)
  end
  if n >= quota then
    if n == quota then
      n = n + 1
      io.open(done_dir .. "/wrk_done." .. tid, "w"):close()
      wrk.thread:stop()
    end
    return wrk.format("GET", idle)
  end
  n = n + 1
  return make_request(n, tid)
end
LUA
    } >"$work/quota.lua"
    # The duration is a ceiling: wrk_quota_wait interrupts wrk when every thread is done.
    # shellcheck disable=SC2086 # $wrk_pin is a command prefix or empty
    $wrk_pin "$WRK" -t"$THREADS" -c"$CONNECTIONS" -d3600s -s "$work/quota.lua" "$1" >"$work/wrk.out" 2>&1 &
    wrk_pid=$!
    bench_track "$wrk_pid"
}

# wrk_quota_wait SECONDS: waits until every wrk thread sent its share (at most
# SECONDS); sets $t_sent_all (ms). Fails when wrk exits first or the time runs
# out. wrk keeps its connections open (the last requests may still be in
# flight, and a server may drop a request whose client has gone) until
# wrk_quota_end.
wrk_quota_wait() {
    limit=$(($1 * 100))
    n=0
    while [ "$(find "$work" -maxdepth 1 -name 'wrk_done.*' | wc -l)" -lt "$THREADS" ]; do
        if ! kill -0 "$wrk_pid" 2>/dev/null; then
            cat "$work/wrk.out" >&2
            fail "wrk exited before sending its requests"
        fi
        n=$((n + 1))
        [ "$n" -ge "$limit" ] && fail "wrk did not send its requests within $1 s"
        sleep 0.01
    done
    t_sent_all=$(now_ms)
}

# wrk_quota_end: ends wrk (SIGINT: it prints its figures); sets $wrk_errors.
wrk_quota_end() {
    kill -INT "$wrk_pid" 2>/dev/null || true
    wait "$wrk_pid" || true
    wrk_errors=$(sed -n 's/^[[:space:]]*Socket errors: \(.*\)/\1/p' "$work/wrk.out")
}

# disk_sync: the median and p90 of 30 fdatasync calls of a 4 KiB write in the
# work folder (the store's file system): the durable benchmarks wait for such
# syncs, and on a shared machine their latency moves the rates more than the code.
disk_sync() {
    python3 - "$work" <<'PY'
import os, statistics, sys, time
path = os.path.join(sys.argv[1], "sync-probe")
fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
ts = []
for i in range(30):
    os.pwrite(fd, b"x" * 4096, i * 4096)
    t = time.perf_counter()
    os.fdatasync(fd)
    ts.append(time.perf_counter() - t)
os.close(fd)
os.unlink(path)
ts.sort()
print("fdatasync %.2f ms median, %.2f ms p90" % (statistics.median(ts) * 1e3, ts[26] * 1e3))
PY
}

# perf_start: when PERF is set, `perf record` of the daemon ($pid) into $PERF
# (PERF_ARGS replaces -g), returning once perf has attached (its file has its
# header). perf_stop ends it (SIGINT: perf writes its data). Both do nothing
# without PERF.
perf_pid=""
perf_start() {
    [ -n "${PERF:-}" ] || return 0
    # shellcheck disable=SC2086 # PERF_ARGS: perf's options, split on spaces
    perf record ${PERF_ARGS:--g} -o "$PERF" -p "$pid" >"$work/perf.log" 2>&1 &
    perf_pid=$!
    bench_track "$perf_pid"
    wait_until 10 test -s "$PERF" || fail "perf record did not start: $(cat "$work/perf.log")"
}
perf_stop() {
    [ -n "$perf_pid" ] || return 0
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
    perf_pid=""
}
