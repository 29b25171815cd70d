#!/bin/sh
# HTTP benchmark: GET /healthz over keep-alive connections with wrk.
# Prints one line with requests/s and the p99 latency. Settings: see lib.sh.
set -eu
NAME=http.sh
. "$(dirname "$0")/lib.sh"

bench_start
bench_wrk "http://127.0.0.1:$port/healthz"
bench_stop
printf 'http.sh: GET /healthz keep-alive t=%s c=%s d=%s (%s): %s requests/s, p99 %s, daemon CPU %s µs/request%s\n' \
    "$THREADS" "$CONNECTIONS" "$DURATION" "$pinned" "$rps" "${p99:-?}" "$cpu_us" "${errors:+, errors: $errors}"
