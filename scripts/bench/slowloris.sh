#!/bin/sh
# Slowloris: GET /healthz throughput (as http.sh) alone, then while SLOW
# clients (default 500) hold connections by trickling bytes: half send a
# header byte a second, half a body byte a second, each reconnecting when the
# daemon cuts it off (header_timeout_ms, request_timeout_ms). Prints both
# figures and their ratio; the slow clients should cost next to nothing.
# Settings: see lib.sh; SLOW.
set -eu
NAME=slowloris.sh
. "$(dirname "$0")/lib.sh"
SLOW=${SLOW:-500}

cat >"$work/slowloris.py" <<'PY'
import socket, sys, time
port, count = int(sys.argv[1]), int(sys.argv[2])
def opened(i):
    s = socket.create_connection(("127.0.0.1", port))
    s.setblocking(False)
    if i % 2:
        s.send(b"POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n")
    else:
        s.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
    return s
conns = [opened(i) for i in range(count)]
print("ready", flush=True)
while True:
    start = time.monotonic()
    for i, s in enumerate(conns):
        try:
            s.send(b"x" if i % 2 else b"X")
        except OSError:
            s.close()
            conns[i] = opened(i)
    time.sleep(max(0.0, 1.0 - (time.monotonic() - start)))
PY

bench_start
bench_wrk "http://127.0.0.1:$port/healthz"
alone_rps=$rps alone_p99=$p99 alone_cpu=$cpu_us
python3 "$work/slowloris.py" "$port" "$SLOW" >"$work/slow.out" 2>&1 &
slow_pid=$!
tries=0
until grep -q ready "$work/slow.out"; do
    tries=$((tries + 1))
    if [ "$tries" -gt 1000 ] || ! kill -0 "$slow_pid" 2>/dev/null; then
        echo "$NAME: the slow clients did not start:" >&2
        cat "$work/slow.out" >&2
        exit 1
    fi
    sleep 0.01
done
bench_wrk "http://127.0.0.1:$port/healthz"
kill "$slow_pid" 2>/dev/null || true
wait "$slow_pid" 2>/dev/null || true
bench_stop
printf 'slowloris.sh: GET /healthz keep-alive t=%s c=%s d=%s (%s): alone %s requests/s (p99 %s, %s µs/request); with %s slow clients %s requests/s (p99 %s, %s µs/request): %s%%%s\n' \
    "$THREADS" "$CONNECTIONS" "$DURATION" "$pinned" "$alone_rps" "${alone_p99:-?}" "$alone_cpu" "$SLOW" "$rps" \
    "${p99:-?}" "$cpu_us" "$(awk -v a="$alone_rps" -v b="$rps" 'BEGIN { printf "%.0f", b * 100 / a }')" \
    "${errors:+, errors: $errors}"
