#!/bin/sh
# Inbound SMS with an auto-reply, 64 keep-alive connections, durable (every
# answer after the synced commit): wrk posts inbound messages with distinct
# provider ids to POST /hooks/mock/inbound for DURATION; the rules'
# sms.on_inbound answers each with sms.reply, which the daemon sends to the
# fake provider (nginx answering a canned JSON, fake_provider.py; the mock
# adapter, batches of up to 100). Prints inbound/s (answered) and p99, then
# waits until every reply is sent (committed) and prints the end-to-end rate
# and the daemon's CPU µs per inbound SMS (all its threads, from the first
# request until the last reply is sent: storing it, the handler, the reply).
# Settings: see lib.sh; STALL (seconds without progress before giving up,
# default 60); PERF=FILE (record `perf record -g` of the daemon from the first
# request until the last reply is sent into FILE; PERF_ARGS replaces -g, e.g.
# "--call-graph dwarf -F 499"). With PIN=1 nginx shares CPU 1 with wrk.
set -eu
NAME=inbound.sh
. "$(dirname "$0")/lib.sh"

KEY=bench-key
STALL=${STALL:-60}
PERF=${PERF:-}
if [ -n "$PERF" ]; then
    bench_need perf linux-perf
fi

# warn_lines: counts the daemon's warn and error log lines, shows the first 5.
warn_lines() {
    grep '"level":"\(warn\|error\)"' "$work/daemon.log" | head -n 5 | sed "s/^/$NAME: /" >&2 || true
    grep -c '"level":"\(warn\|error\)"' "$work/daemon.log" || true
}

load_before=$(load)
sync_before=$(disk_sync)
fake_start
cat >"$work/rules.lua" <<LUA
sms.config{ api_keys = { "$KEY" }, default_country = "84" }
sms.provider("mock", { adapter = "mock", url = "http://127.0.0.1:$fake_port/batch", concurrency = 16 })
LUA
cat >>"$work/rules.lua" <<'LUA'
sms.on_inbound(function(msg)
  return sms.reply(msg, "Thanks, we got your message. Reply STOP to opt out.")
end)
LUA
cat >"$work/inbound.lua" <<'LUA'
local count = 0
function setup(thread)
  count = count + 1
  thread:set("tid", count)
end
local n = 0
local headers = { ["Content-Type"] = "application/json" }
function request()
  n = n + 1
  -- Distinct provider ids (never a duplicate) and senders.
  local body = string.format('{"message_id":"in-%d-%d","from":"+849%07d7","to":"+84900000001",'
    .. '"text":"Hello, is my order %d on its way?","timestamp":"2026-11-23T10:00:00Z"}',
    tid, n, ((tid - 1) * 5000000 + n) % 10000000, n)
  return wrk.format("POST", "/hooks/mock/inbound", headers, body)
end
LUA

bench_start -c "$work/rules.lua"
perf_start
cpu0=$(daemon_cpu_ticks)
t0=$(now_ms)
bench_wrk "http://127.0.0.1:$port/hooks/mock/inbound" -s "$work/inbound.lua"
answered=$(sed -n 's/^[[:space:]]*\([0-9]*\) requests in.*/\1/p' "$work/wrk.out")
stored=$(metric smsrules_inbound_total)
dups=$(metric smsrules_inbound_duplicates_total)
replies_sent() { count=$(metric 'smsrules_provider_sent_total{provider="mock"}'); }
wait_count replies_sent "$stored" "$STALL" || true
replies=$count
t_done=$t_reached
cpu1=$(daemon_cpu_ticks)
perf_stop
handler_errors=$(metric smsrules_inbound_handler_errors_total)
warn=$(warn_lines)
bench_stop
fake_stop

printf '%s: POST /hooks/mock/inbound (stored, on_inbound sms.reply, durable) t=%s c=%s d=%s (%s): %s inbound/s answered (aim 20000/s: %s%%), p99 %s; %s stored, %s replies sent (committed) %s s after the first request: %s inbound/s end to end, daemon CPU %s µs/inbound (reply included; %s µs/request during the run); load average %s before, %s after; disk %s before, %s after%s\n' \
    "$NAME" "$THREADS" "$CONNECTIONS" "$DURATION" "$pinned" "$rps" "$(awk -v r="$rps" 'BEGIN { printf "%.0f", r / 200 }')" \
    "${p99:-?}" "$stored" "$replies" "$(secs $((t_done - t0)))" "$(rate "$replies" $((t_done - t0)))" \
    "$(us_per "$cpu0" "$cpu1" "$stored")" "$cpu_us" "$load_before" "$(load)" "$sync_before" "$(disk_sync)" "${errors:+, errors: $errors}"

problems=""
[ -n "$errors" ] && problems="$problems wrk errors ($errors);"
[ "$stored" -lt "$answered" ] && problems="$problems $answered inbound answered but $stored stored;"
[ "$dups" -ne 0 ] && problems="$problems $dups inbound duplicates;"
[ "$replies" -lt "$stored" ] && problems="$problems $replies replies sent for $stored inbound (no progress for $STALL s);"
[ "$handler_errors" -ne 0 ] && problems="$problems $handler_errors handler errors;"
[ "$warn" -gt 0 ] && problems="$problems $warn warn/error log lines;"
if [ -n "$problems" ]; then
    echo "$NAME:$problems" >&2
    exit 1
fi
