#!/bin/sh
# Delivery reports, 64 keep-alive connections, durable (every answer after the
# synced commit): MESSAGES messages (default 100,000) are sent to the fake
# provider (nginx answering a canned JSON, fake_provider.py; the mock adapter,
# batches of 100, a distinct provider id per message; no report push), their
# provider ids listed (GET /v1/messages?status=sent), then wrk posts one
# DELIVRD report per request to POST /hooks/mock/status, each for a different
# message (every report is a real sent → delivered change, never a
# duplicate). The rules' sms.on_status counts statuses in sms.kv. wrk stops
# when the ids run out (or after DURATION; the other thread's last few ids
# then stay unused). Prints reports/s, p99 and the daemon's CPU µs per report,
# and checks that every report matched, that as many messages are delivered,
# and the on_status counts. Then the floor: the same wrk and reports against
# nginx (the fake provider) answering each with a canned 200 and doing no
# work, the most any receiver of these reports reaches on this machine with
# this client (FLOOR=0 skips it). Inbound SMS with an auto-reply: inbound.sh.
# Settings: see lib.sh; MESSAGES, BATCH (1000); FLOOR (1); PERF=FILE (record `perf
# record -g` of the daemon during the reports into FILE; PERF_ARGS replaces -g,
# e.g. "--call-graph dwarf -F 499"). With PIN=1 nginx shares CPU 1 with wrk.
set -eu
NAME=webhooks.sh
. "$(dirname "$0")/lib.sh"

MESSAGES=${MESSAGES:-100000}
BATCH=${BATCH:-1000}
FLOOR=${FLOOR:-1}
PERF=${PERF:-}
KEY=bench-key
if [ -n "$PERF" ]; then
    bench_need perf linux-perf
fi

# list_pages STATUS: every page of GET /v1/messages?status=STATUS into $work/pages.
list_pages() {
    : >"$work/pages"
    after=""
    while :; do
        curl -s -H "Authorization: Bearer $KEY" \
            "http://127.0.0.1:$port/v1/messages?status=$1&limit=1000${after:+&after=$after}" >"$work/page"
        grep -q '"messages":' "$work/page" || { cat "$work/page" >&2; fail "listing $1 messages failed"; }
        cat "$work/page" >>"$work/pages"
        echo >>"$work/pages"
        after=$(tail -c 64 "$work/page" | sed -n 's/.*"next":"\([^"]*\)"}$/\1/p')
        [ -n "$after" ] || break
    done
}

# counts: what the rules' on_status counted (part 1's rules).
counts() {
    curl -s -X POST -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d '{}' \
        "http://127.0.0.1:$port/v1/events/bench_counts"
}

# From wrk's "N requests in T, ..." line: N (requests answered), T (the time run).
wrk_requests() { sed -n 's/^[[:space:]]*\([0-9]*\) requests in.*/\1/p' "$work/wrk.out"; }
wrk_time() { sed -n 's/^[[:space:]]*[0-9]* requests in \([^,]*\),.*/\1/p' "$work/wrk.out"; }

# warn_lines WHAT: counts the daemon's warn and error log lines, shows the first 5.
warn_lines() {
    grep '"level":"\(warn\|error\)"' "$work/daemon.log" | head -n 5 | sed "s/^/$NAME: $1: /" >&2 || true
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
-- Durable: the increment commits in the handler's store unit.
sms.on_status(function(msg, status)
  sms.kv.incr("status:" .. status)
end)
sms.on("bench_counts", function()
  return { sent = sms.kv.get("status:sent"), delivered = sms.kv.get("status:delivered") }
end)
LUA

bench_start -c "$work/rules.lua"

batches=$((MESSAGES / BATCH))
[ "$batches" -ge 1 ] || fail "MESSAGES must be at least BATCH ($BATCH)"
total=$((batches * BATCH))
t0=$(now_ms)
b=0
while [ "$b" -lt "$batches" ]; do
    awk -v b="$b" -v n="$BATCH" 'BEGIN {
        printf "{\"messages\":["
        for (i = 0; i < n; i++) {
            k = b * n + i
            printf "%s{\"to\":\"+849%07d7\",\"text\":\"Your order %d has shipped\"}", (i ? "," : ""), k % 10000000, k
        }
        printf "]}"
    }' >"$work/batch.json"
    code=$(curl -s -o "$work/answer" -w '%{http_code}' -H "Authorization: Bearer $KEY" \
        -H 'Content-Type: application/json' --data-binary @"$work/batch.json" "http://127.0.0.1:$port/v1/messages")
    [ "$code" = 202 ] || { head -c 500 "$work/answer" >&2; fail "batch $b answered $code"; }
    b=$((b + 1))
done
sent_all() { [ "$(metric 'smsrules_provider_sent_total{provider="mock"}')" -ge "$total" ]; }
wait_until 600 sent_all || fail "only $(metric 'smsrules_provider_sent_total{provider="mock"}') of $total messages were sent"
# ... and their on_status handlers done, so that the reports start on a quiet daemon.
kv_sent() { counts | sed -n 's/.*"sent":"\{0,1\}\([0-9]*\).*/\1/p'; }
sent_counted() { [ "$(kv_sent)" = "$total" ]; }
wait_until 120 sent_counted || fail "on_status counted $(kv_sent) of $total messages sent"
t_sent=$(now_ms)

# Their provider ids, in the order of the messages (the attempts repeat them).
list_pages sent
grep -o '"provider_id":"[^"]*"' "$work/pages" | sed 's/"provider_id":"\(.*\)"/\1/' | awk '!seen[$0]++' >"$work/ids"
ids=$(wc -l <"$work/ids")
[ "$ids" -eq "$total" ] || fail "$total messages sent but $ids provider ids listed"
t_listed=$(now_ms)
echo "$NAME: $total messages sent to the fake provider in $(((t_sent - t0) / 1000)).$(((t_sent - t0) % 1000 / 100)) s, provider ids listed in $(((t_listed - t_sent) / 1000)).$(((t_listed - t_sent) % 1000 / 100)) s" >&2

# One report per request, thread k of THREADS taking every THREADS-th id;
# when its ids run out, the thread stops and interrupts wrk (SIGINT ends
# wrk's run early with its figures for the time actually run).
{
    printf 'local ids_file, nthreads = "%s", %d\n' "$work/ids" "$THREADS"
    cat <<'LUA'
local count = 0
function setup(thread)
  count = count + 1
  thread:set("tid", count)
end
local ids, i, wrk_pid = {}, 0, nil
function init(args)
  local n = 0
  for line in io.lines(ids_file) do
    if n % nthreads == tid - 1 then ids[#ids + 1] = line end
    n = n + 1
  end
  local f = io.open("/proc/self/stat")
  wrk_pid = f:read("*n")
  f:close()
end
local headers = { ["Content-Type"] = "application/json" }
local verified = false
function request()
  -- wrk calls the first thread's request() once to check it, and never sends
  -- that one: give it a request that spends no id.
  if tid == 1 and not verified then
    verified = true
    return wrk.format("GET", "/healthz")
  end
  i = i + 1
  local id = ids[i]
  if id == nil then
    if i == #ids + 1 then
      wrk.thread:stop()
      -- popen, not os.execute: system() ignores SIGINT while it runs.
      io.popen("kill -INT " .. wrk_pid):close()
    end
    return wrk.format("GET", "/healthz")
  end
  return wrk.format("POST", "/hooks/mock/status", headers,
    '{"message_id":"' .. id .. '","status":"DELIVRD","timestamp":"2026-11-23T10:00:00Z"}')
end
LUA
} >"$work/status.lua"

perf_start
commits0=$(metric smsrules_store_commits_total)
units0=$(metric smsrules_store_units_total)
bench_wrk "http://127.0.0.1:$port/hooks/mock/status" -s "$work/status.lua"
commits=$(($(metric smsrules_store_commits_total) - commits0))
units=$(($(metric smsrules_store_units_total) - units0))
reports_rps=$rps
reports_p99=$p99
reports_cpu=$cpu_us
reports_errors=$errors
reports_answered=$(wrk_requests)
reports_time=$(wrk_time)
perf_stop

matched=$(metric 'smsrules_dlr_reports_total{result="matched"}')
duplicate=$(metric 'smsrules_dlr_reports_total{result="duplicate"}')
parked=$(metric 'smsrules_dlr_reports_total{result="parked"}')
hooks_ok=$(metric 'smsrules_webhooks_total{provider="mock",kind="status",result="ok"}')
hooks_err=$(metric 'smsrules_webhooks_total{provider="mock",kind="status",result="store_error"}')
# on_status runs after each commit: wait for its count to catch up.
kv_delivered() { counts | sed -n 's/.*"delivered":"\{0,1\}\([0-9]*\).*/\1/p'; }
on_status_caught_up() { [ "$(kv_delivered)" = "$matched" ]; }
wait_until 60 on_status_caught_up || true
on_status=$(kv_delivered)
list_pages delivered
delivered=$(grep -o '"history":' "$work/pages" | wc -l)
reports_warn=$(warn_lines reports)
bench_stop

# The floor: the same reports to nginx's canned answer (bench_wrk measures the
# CPU of $pid: nginx's now, the daemon has exited).
floor=""
if [ "$FLOOR" = 1 ]; then
    pid=$fake_pid
    bench_wrk "http://127.0.0.1:$fake_port/hooks/mock/status" -s "$work/status.lua"
    floor=$(printf '; the floor (nginx %s, one worker, a canned 200 to the same reports): %s reports/s, nginx CPU %s µs/report%s; smsrules/floor %s' \
        "$(nginx -v 2>&1 | sed 's/.*nginx\///')" "$rps" "$cpu_us" "${errors:+, errors: $errors}" \
        "$(awk -v a="$reports_rps" -v b="$rps" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "?" }')")
fi

printf 'webhooks.sh: POST /hooks/mock/status (DLR sent → delivered, on_status kv.incr, durable) t=%s c=%s (%s): %s reports/s (aim 50000/s: %s%%), p99 %s, daemon CPU %s µs/report, %s answered in %s; %s matched, %s messages delivered (of %s sent), on_status counted %s (duplicate %s, parked %s); %s store units in %s synced commits; load average %s before, %s after; disk %s before, %s after%s%s\n' \
    "$THREADS" "$CONNECTIONS" "$pinned" "$reports_rps" "$(awk -v r="$reports_rps" 'BEGIN { printf "%.0f", r / 500 }')" \
    "${reports_p99:-?}" "$reports_cpu" "$reports_answered" "$reports_time" "$matched" "$delivered" "$total" "${on_status:-?}" \
    "$duplicate" "$parked" "$units" "$commits" "$load_before" "$(load)" "$sync_before" "$(disk_sync)" "${reports_errors:+, errors: $reports_errors}" \
    "$floor"

problems=""
[ -n "$reports_errors" ] && problems="$problems wrk errors ($reports_errors);"
[ "$hooks_err" -gt 0 ] && problems="$problems $hooks_err reports answered with a store error;"
# wrk may count the few GET /healthz a thread sends as its ids run out: THREADS of slack.
[ "$matched" -lt $((reports_answered - THREADS)) ] && problems="$problems $reports_answered answered but $matched matched;"
[ "$delivered" -ne "$matched" ] && problems="$problems $matched matched but $delivered delivered;"
[ "${on_status:-0}" != "$matched" ] && problems="$problems on_status counted ${on_status:-?} of $matched;"
[ "$duplicate" -ne 0 ] || [ "$parked" -ne 0 ] && problems="$problems duplicate or parked reports;"
[ "$hooks_ok" -lt $((reports_answered - THREADS)) ] && problems="$problems webhooks ok $hooks_ok < answered $reports_answered;"
[ "$reports_warn" -gt 0 ] && problems="$problems $reports_warn warn/error log lines;"
fake_stop
if [ -n "$problems" ]; then
    echo "$NAME:$problems" >&2
    exit 1
fi
