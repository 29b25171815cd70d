#!/bin/sh
# smsrules simulate: simulated messages per second of one strategy (primary
# with fallback_on undelivered to a backup), pinned to one core, and the peak
# heap at two traffic sizes (it should not grow with the message count).
# Environment: BUILD (default build), SMSRULES_BIN, MESSAGES (default 200000),
# RESOLUTION_MS (the virtual clock's step, default: simulate's own, 10).
set -eu
BUILD=${BUILD:-build}
BIN=${SMSRULES_BIN:-$BUILD/smsrules}
MESSAGES=${MESSAGES:-200000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pin=""
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 1 ]; then pin="taskset -c 0"; fi

cat >"$work/strategy.lua" <<'LUA'
sms.provider("primary", { adapter = "mock", url = "http://127.0.0.1:9/send" })
sms.provider("backup", { adapter = "mock", url = "http://127.0.0.1:9/send" })
sms.route(function(msg) return { "primary", "backup", fallback_on = { "undelivered" } } end)
LUA
cat >"$work/models.json" <<'JSON'
{"providers": {
  "primary": {"default": {"accept": 0.99, "errors": {"503": 0.01}, "send_latency_ms": {"p50": 80, "p95": 300},
                          "delivered": 0.85, "undelivered": 0.1, "report_latency_ms": {"p50": 4000, "p95": 30000},
                          "price": 0.02}},
  "backup": {"default": {"send_latency_ms": {"p50": 120, "p95": 400}, "delivered": 0.95, "undelivered": 0.05,
                         "report_latency_ms": {"p50": 3000, "p95": 10000}, "price": 0.05}}}}
JSON

# Peak anonymous memory (the process's own heap; the store's file pages, in
# TMPDIR and thrown away after, grow with the message count and are not it),
# sampled from /proc every 0.1 s, and the wall time.
run() { # messages → "seconds peak_anon_kb"
    printf '{"messages": %s, "rate_per_s": 500, "countries": {"84": 0.7, "7": 0.3}, "segments": {"1": 0.8, "2": 0.2}}\n' \
        "$1" >"$work/traffic.json"
    start=$(date +%s.%N)
    $pin "$BIN" simulate ${RESOLUTION_MS:+--resolution-ms $RESOLUTION_MS} \
        --json --models "$work/models.json" --traffic "$work/traffic.json" "$work/strategy.lua" >"$work/out.json" &
    pid=$!
    peak=0
    while kill -0 "$pid" 2>/dev/null; do
        kb=$(sed -n 's/^RssAnon:[^0-9]*\([0-9]*\).*/\1/p' "/proc/$pid/status" 2>/dev/null || true)
        if [ -n "$kb" ] && [ "$kb" -gt "$peak" ]; then peak=$kb; fi
        sleep 0.1
    done
    wait "$pid"
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" -v p="$peak" 'BEGIN { printf "%.2f %d\n", b - a, p }'
}

small=$((MESSAGES / 4))
set -- $(run "$small")
small_s=$1 small_kb=$2
set -- $(run "$MESSAGES")
big_s=$1 big_kb=$2
rate=$(awk -v n="$MESSAGES" -v s="$big_s" 'BEGIN { printf "%d", (s > 0 ? n / s : 0) }')
delivered=$(sed -n 's/.*"delivered_ratio":\([0-9.]*\).*/\1/p' "$work/out.json")
printf 'simulate.sh: one strategy, %s messages (%s): %s s, %s simulated messages/s, delivered %s; peak heap (anonymous memory) %s MB at %s messages, %s MB at %s\n' \
    "$MESSAGES" "${pin:-unpinned}" "$big_s" "$rate" "$delivered" $((small_kb / 1024)) "$small" $((big_kb / 1024)) "$MESSAGES"
