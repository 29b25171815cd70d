#!/bin/sh
# Triggers: POST /v1/events/x where the rule renders a template and sends one
# message, 64 keep-alive connections, durable (each answer after the synced
# commit of the rule's effects). Prints events/s and p99. Settings: lib.sh.
set -eu
NAME=events.sh
. "$(dirname "$0")/lib.sh"

cat >"$work/rules.lua" <<'LUA'
sms.config{ api_keys = { "bench-key" }, default_country = "84" }
sms.template("shipped", "Order #{{order.number}} has shipped. Track it at example.com/t/{{order.number}}")
sms.on("x", function(ev)
  return sms.send{ to = ev.phone, template = "shipped", vars = ev }
end)
LUA
cat >"$work/post.lua" <<'LUA'
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"phone":"+8491%07d","order":{"number":%d}}', n % 10000000, n)
  return wrk.format("POST", "/v1/events/x", { ["Authorization"] = "Bearer bench-key",
                                              ["Content-Type"] = "application/json" }, body)
end
LUA

bench_start -c "$work/rules.lua"
bench_wrk "http://127.0.0.1:$port/v1/events/x" -s "$work/post.lua"
answered=$(curl -s "http://127.0.0.1:$port/metrics" | sed -n 's/^smsrules_http_requests_total{route="\/v1\/events\/{name}",code="202"} \([0-9]*\)/\1/p')
bench_stop
printf 'events.sh: POST /v1/events/x (template + sms.send, durable) t=%s c=%s d=%s (%s): %s events/s, p99 %s, daemon CPU %s µs/request, %s answered 202%s\n' \
    "$THREADS" "$CONNECTIONS" "$DURATION" "$pinned" "$rps" "${p99:-?}" "$cpu_us" "${answered:-?}" "${errors:+, errors: $errors}"
if [ -n "$errors" ]; then
    echo "events.sh: some events failed" >&2
    exit 1
fi
