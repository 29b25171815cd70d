#!/bin/sh
# Durable accepts: POST /v1/messages with one message per request, 64
# keep-alive connections, sync on (every 202 waits for its fsync'd commit).
# Prints accepted messages/s and the p99 latency; fails on any non-202.
# Settings: see lib.sh.
set -eu
NAME=accept.sh
. "$(dirname "$0")/lib.sh"

cat >"$work/rules.lua" <<'LUA'
sms.config{ api_keys = { "bench-key" }, default_country = "84" }
LUA
cat >"$work/post.lua" <<'LUA'
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"to":"+8491%07d","text":"Your order %d has shipped. Track it at example.com/t/%d"}', n % 10000000, n, n)
  return wrk.format("POST", "/v1/messages", { ["Authorization"] = "Bearer bench-key",
                                              ["Content-Type"] = "application/json" }, body)
end
LUA

bench_start -c "$work/rules.lua"
bench_wrk "http://127.0.0.1:$port/v1/messages" -s "$work/post.lua"
stored=$(curl -s "http://127.0.0.1:$port/metrics" | sed -n 's/^smsrules_http_requests_total{route="\/v1\/messages",code="202"} \([0-9]*\)/\1/p')
bench_stop
printf 'accept.sh: POST /v1/messages durable t=%s c=%s d=%s (%s): %s accepted/s, p99 %s, daemon CPU %s µs/request, %s answered 202%s\n' \
    "$THREADS" "$CONNECTIONS" "$DURATION" "$pinned" "$rps" "${p99:-?}" "$cpu_us" "${stored:-?}" "${errors:+, errors: $errors}"
if [ -n "$errors" ]; then
    echo "accept.sh: some requests were not accepted" >&2
    exit 1
fi
