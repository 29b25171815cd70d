#!/bin/sh
# One message per request, end to end, smsrules beside Kannel in one run.
#
# The same MESSAGES (default 100,000) single-message requests from wrk (THREADS,
# CONNECTIONS: 2, 64) to each gateway in turn, both sending to the same fake
# provider (nginx answering a canned JSON on loopback, fake_provider.py):
#  1. smsrules: POST /v1/messages {"to","from","text"}, the generic adapter,
#     durable (every 202 after the synced commit). Timed from the first
#     request until the daemon's smsrules_provider_sent_total says all
#     MESSAGES are sent (accepted → provider answered → `sent` committed).
#  2. Kannel (Debian's kannel: bearerbox + smsbox): GET /cgi-bin/sendsms to
#     smsbox → bearerbox → an HTTP SMSC (system-type generic, send-url on the
#     fake provider). Timed from the first request until nginx received all
#     MESSAGES. Kannel keeps its queue in memory only (no store file) unless
#     KANNEL_STORE=1.
#  3. the floor: nginx itself as a pure proxy (one worker, like the daemon's
#     one event loop): the same wrk script and bodies to POST /v1/messages,
#     proxy_pass to the same fake provider's /send over kept-alive upstream
#     connections (fake_provider.py's PROXY_CONF). One HTTP request in and
#     one out with no work at all: no gateway that makes one provider request
#     per client request can beat it on this machine. Timed from the first
#     request until nginx (the provider) received all MESSAGES.
# Prints each rate and the CPU time per message of the daemon (all its
# threads), of the floor's nginx and of bearerbox + smsbox, from
# /proc/PID/stat before and after (on a shared machine the rates swing with
# the neighbours, the CPU per message much less), then the ratios
# smsrules/Kannel (aim 5x), floor/Kannel (the most any gateway can reach
# here) and smsrules/floor.
#
# Settings: lib.sh's (THREADS, CONNECTIONS, PIN, BUILD, SMSRULES_BIN);
# MESSAGES; PROVIDER_CONCURRENCY (requests in flight to the provider: the
# provider's `concurrency` and Kannel's max-pending-submits, default 64, as
# many as the clients: at the daemon's default of 16 each send waits for two
# synced commits, sending and sent, and the rate is the disk's); KANNEL=0 (skip Kannel); KANNEL_STORE=1;
# FLOOR=0 (skip the floor); PERF=FILE
# (record `perf record -g` of the daemon during its run into FILE; PERF_ARGS
# replaces -g, e.g. "--call-graph dwarf -F 499");
# STALL (seconds without progress before giving up, default 60).
# Installs wrk, nginx-light and kannel with apt-get when missing (as root).
set -eu
NAME=sendsms.sh
. "$(dirname "$0")/lib.sh"

MESSAGES=${MESSAGES:-100000}
PROVIDER_CONCURRENCY=${PROVIDER_CONCURRENCY:-64}
KANNEL=${KANNEL:-1}
KANNEL_STORE=${KANNEL_STORE:-0}
FLOOR=${FLOOR:-1}
PERF=${PERF:-}
STALL=${STALL:-60}
KEY=bench-key
[ "$MESSAGES" -ge "$THREADS" ] || fail "MESSAGES must be at least THREADS"
if [ "$KANNEL" = 1 ]; then
    bench_need bearerbox kannel
fi
if [ -n "$PERF" ]; then
    bench_need perf linux-perf
fi

load_before=$(load)
sync_before=$(disk_sync)
fake_start

# ---- 1. smsrules ----

cat >"$work/rules.lua" <<LUA
sms.config{ api_keys = { "$KEY" }, default_country = "84" }
sms.provider("fake", { adapter = "generic", url = "http://127.0.0.1:$fake_port/send",
                       concurrency = $PROVIDER_CONCURRENCY })
LUA
cat >"$work/post.lua" <<LUA
local headers = { ["Authorization"] = "Bearer $KEY", ["Content-Type"] = "application/json" }
LUA
cat >>"$work/post.lua" <<'LUA'
function make_request(n, tid)
  local k = (tid - 1) * 5000000 + n
  return wrk.format("POST", "/v1/messages", headers, string.format(
    '{"to":"+8491%07d","from":"Shop","text":"Your order %d has shipped. Track it at example.com/t/%d"}',
    k % 10000000, k, k))
end
LUA

bench_start -c "$work/rules.lua"
sent_count() { count=$(metric 'smsrules_provider_sent_total{provider="fake"}'); }
perf_start
cpu0=$(daemon_cpu_ticks)
loop0=$(loop_ticks "$pid")
commits0=$(metric smsrules_store_commits_total)
units0=$(metric smsrules_store_units_total)
fake_count
fake0=$count
fake_conns0=$fake_conns
t0=$(now_ms)
wrk_quota "http://127.0.0.1:$port/v1/messages" "$MESSAGES" "$work/post.lua"
wrk_quota_wait 3600
ours_accept_ms=$((t_sent_all - t0))
wait_count sent_count "$MESSAGES" "$STALL" || fail "smsrules: $count of $MESSAGES messages sent, no progress for $STALL s ($(metric 'smsrules_http_requests_total{route="/v1/messages",code="202"}') accepted)"
ours_ms=$((t_reached - t0))
wrk_quota_end
cpu1=$(daemon_cpu_ticks)
loop1=$(loop_ticks "$pid")
commits=$(($(metric smsrules_store_commits_total) - commits0))
units=$(($(metric smsrules_store_units_total) - units0))
perf_stop
accepted=$(metric 'smsrules_http_requests_total{route="/v1/messages",code="202"}')
failed=$(metric 'smsrules_provider_failed_total{provider="fake"}')
retried=$(metric 'smsrules_provider_retried_total{provider="fake"}')
fake_count
ours_provider=$((count - fake0))
ours_conns=$((fake_conns - fake_conns0))
ours_errors=$wrk_errors
bench_stop
[ "$accepted" -eq "$MESSAGES" ] || fail "smsrules accepted $accepted of $MESSAGES requests"
ours_rate=$(rate "$MESSAGES" "$ours_ms")
ours_cpu=$(us_per "$cpu0" "$cpu1" "$MESSAGES")
printf '%s: smsrules: %s messages (1 a request, t=%s c=%s, %s), generic adapter, provider concurrency %s: accepted in %s s (%s/s), all sent (committed) in %s s: %s messages/s end to end, daemon CPU %s µs/message; the daemon used %s%% of a core (loop thread %s%%, writer and other threads %s%%), %s store units in %s synced commits (%s ms apart); the provider saw %s requests on %s connections (%s retried, %s failed)%s\n' \
    "$NAME" "$MESSAGES" "$THREADS" "$CONNECTIONS" "$pinned" "$PROVIDER_CONCURRENCY" "$(secs "$ours_accept_ms")" \
    "$(rate "$MESSAGES" "$ours_accept_ms")" "$(secs "$ours_ms")" "$ours_rate" "$ours_cpu" \
    "$(core_pct $((cpu1 - cpu0)) "$ours_ms")" "$(core_pct $((loop1 - loop0)) "$ours_ms")" \
    "$(core_pct $((cpu1 - cpu0 - loop1 + loop0)) "$ours_ms")" "$units" "$commits" \
    "$(awk -v c="$commits" -v ms="$ours_ms" 'BEGIN { printf "%.1f", (c > 0 ? ms / c : 0) }')" "$ours_provider" \
    "$ours_conns" "$retried" "$failed" "${ours_errors:+; wrk socket errors: $ours_errors}"

# provider_count: sets $count to the requests the fake provider received since $fake0.
provider_count() {
    fake_count || return 1
    count=$((count - fake0))
}

# ratio A B: A / B with two decimals ("?" when either is missing).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && a != "?" && b + 0 > 0) printf "%.2f", a / b; else print "?" }'; }

# summary: the rates side by side and their ratios, the machine's load and disk.
summary() {
    line="smsrules $ours_rate messages/s ($ours_cpu µs CPU each)"
    [ -n "$floor_rate" ] && line="$line, floor (nginx proxy) $floor_rate/s ($floor_cpu µs)"
    [ -n "$kannel_rate" ] && line="$line, kannel $kannel_rate/s ($kannel_cpu µs)"
    [ -n "$kannel_rate" ] && line="$line; smsrules/kannel $(ratio "$ours_rate" "$kannel_rate")x (aim 5x)"
    [ -n "$kannel_rate" ] && [ -n "$floor_rate" ] && line="$line, floor/kannel $(ratio "$floor_rate" "$kannel_rate")x"
    [ -n "$floor_rate" ] && line="$line, smsrules/floor $(ratio "$ours_rate" "$floor_rate")x (CPU $(ratio "$ours_cpu" "$floor_cpu")x the floor's)"
    printf '%s: %s; load average %s before, %s after; disk %s before, %s after\n' \
        "$NAME" "$line" "$load_before" "$(load)" "$sync_before" "$(disk_sync)"
}

# ---- 2. the floor: nginx as a pure proxy to the same provider ----

floor_rate=""
floor_cpu=""
kannel_rate=""
kannel_cpu=""
if [ "$FLOOR" = 1 ]; then
    fdir="$work/floor"
    floor_port=$(python3 "$bench_dir/fake_provider.py" proxy "$fdir" "$fake_port") || exit 1
    # shellcheck disable=SC2086 # $daemon_pin is a command prefix or empty
    $daemon_pin nginx -p "$fdir" -c "$fdir/nginx.conf" -e "$fdir/error.log" >"$fdir/out.log" 2>&1 &
    floor_pid=$!
    bench_track "$floor_pid"
    floor_up() {
        kill -0 "$floor_pid" 2>/dev/null || { cat "$fdir/out.log" "$fdir/error.log" >&2; fail "nginx (the floor) exited"; }
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$floor_port/healthz")" = 200 ]
    }
    wait_until 10 floor_up || fail "nginx (the floor) did not answer on port $floor_port within 10 s"
    fcpu0=$(cpu_ticks "$floor_pid")
    fake_count
    fake0=$count
    t0=$(now_ms)
    wrk_quota "http://127.0.0.1:$floor_port/v1/messages" "$MESSAGES" "$work/post.lua"
    wrk_quota_wait 3600
    wait_count provider_count "$MESSAGES" "$STALL" ||
        fail "floor: the provider received $count of $MESSAGES, no progress for $STALL s"
    floor_ms=$((t_reached - t0))
    wrk_quota_end
    fcpu1=$(cpu_ticks "$floor_pid")
    kill -KILL "$floor_pid" 2>/dev/null || true
    wait "$floor_pid" 2>/dev/null || true
    floor_rate=$(rate "$MESSAGES" "$floor_ms")
    floor_cpu=$(us_per "$fcpu0" "$fcpu1" "$MESSAGES")
    printf '%s: floor (nginx %s, one worker, proxy_pass over 64 kept-alive upstream connections): %s messages (1 a request, t=%s c=%s), all received by the provider in %s s: %s messages/s end to end, nginx CPU %s µs/message%s\n' \
        "$NAME" "$(nginx -v 2>&1 | sed 's/.*nginx\///')" "$MESSAGES" "$THREADS" "$CONNECTIONS" "$(secs "$floor_ms")" \
        "$floor_rate" "$floor_cpu" "${wrk_errors:+; wrk socket errors: $wrk_errors}"
fi

# ---- 3. Kannel ----

if [ "$KANNEL" != 1 ]; then
    echo "$NAME: Kannel skipped (KANNEL=$KANNEL)"
    summary
    exit 0
fi

# kannel_conf: writes $kdir/kannel.conf: bearerbox with an HTTP SMSC (generic)
# sending to the fake provider, smsbox with one sendsms user, on four free
# loopback ports (admin, smsbox link, the SMSC's own for MO, sendsms).
kannel_conf() {
    mkdir -p "$kdir/store"
    # shellcheck disable=SC2046 # four words
    set -- $(python3 "$bench_dir/fake_provider.py" port 4)
    k_admin=$1 k_box=$2 k_smsc=$3 k_send=$4
    k_store=""
    if [ "$KANNEL_STORE" = 1 ]; then
        k_store=$(printf 'store-type = file\nstore-location = "%s"' "$kdir/store/kannel.store")
    fi
    cat >"$kdir/kannel.conf" <<CONF
group = core
admin-port = $k_admin
admin-interface = 127.0.0.1
admin-password = bench
status-password = bench
admin-allow-ip = "127.0.0.1"
smsbox-port = $k_box
smsbox-interface = 127.0.0.1
box-allow-ip = "127.0.0.1"
$k_store

group = smsc
smsc = http
smsc-id = fake
system-type = generic
send-url = "http://127.0.0.1:$fake_port/send?to=%P&from=%p&text=%b"
status-success-regex = "message_id"
max-pending-submits = $PROVIDER_CONCURRENCY
port = $k_smsc
connect-allow-ip = "127.0.0.1"

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = $k_box
sendsms-port = $k_send
sendsms-interface = 127.0.0.1

group = sendsms-user
username = bench
password = bench
CONF
}

# kstatus: bearerbox's status page (text).
kstatus() { curl -s --max-time 5 "http://127.0.0.1:$k_admin/status.txt?password=bench"; }

# kannel_start: starts bearerbox, waits until its SMSC is online, then smsbox,
# waits until it is connected and answers; sets $bb_pid and $sb_pid.
kannel_start() {
    # -v 2: warnings and errors only (the default, debug, would cost more than the work).
    # shellcheck disable=SC2086 # $daemon_pin is a command prefix or empty
    $daemon_pin bearerbox -v 2 "$kdir/kannel.conf" >"$kdir/bearerbox.log" 2>&1 &
    bb_pid=$!
    bench_track "$bb_pid"
    bb_up() {
        kill -0 "$bb_pid" 2>/dev/null || { cat "$kdir/bearerbox.log" >&2; fail "bearerbox exited (a port busy?)"; }
        kstatus | grep -q 'online'
    }
    wait_until 30 bb_up || { cat "$kdir/bearerbox.log" >&2; fail "bearerbox's HTTP SMSC did not come online in 30 s"; }
    # shellcheck disable=SC2086
    $daemon_pin smsbox -v 2 "$kdir/kannel.conf" >"$kdir/smsbox.log" 2>&1 &
    sb_pid=$!
    bench_track "$sb_pid"
    sb_up() {
        kill -0 "$sb_pid" 2>/dev/null || { cat "$kdir/smsbox.log" >&2; fail "smsbox exited (a port busy?)"; }
        kstatus | grep -q 'smsbox:.*on-line' &&
            [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$k_send/cgi-bin/sendsms")" != 000 ]
    }
    wait_until 30 sb_up || { cat "$kdir/smsbox.log" >&2; fail "smsbox did not connect and listen in 30 s"; }
}

kdir="$work/kannel"
kannel_conf
kannel_start

cat >"$work/kannel.lua" <<'LUA'
function make_request(n, tid)
  local k = (tid - 1) * 5000000 + n
  return wrk.format("GET", string.format("/cgi-bin/sendsms?username=bench&password=bench&from=Shop&to=8491%07d"
    .. "&text=Your+order+%d+has+shipped.+Track+it+at+example.com%%2Ft%%2F%d", k % 10000000, k, k))
end
LUA

kcpu0=$(cpu_ticks "$bb_pid" "$sb_pid")
fake_count
fake0=$count
t0=$(now_ms)
wrk_quota "http://127.0.0.1:$k_send/cgi-bin/sendsms" "$MESSAGES" "$work/kannel.lua" /
wrk_quota_wait 3600
kannel_accept_ms=$((t_sent_all - t0))
if ! wait_count provider_count "$MESSAGES" "$STALL"; then
    kstatus | sed -n 's/^SMS: /Kannel: SMS: /p' >&2
    tail -n 5 "$kdir/bearerbox.log" "$kdir/smsbox.log" >&2
    fail "Kannel: the provider received $count of $MESSAGES, no progress for $STALL s"
fi
kannel_ms=$((t_reached - t0))
wrk_quota_end
kannel_errors=$wrk_errors
kcpu1=$(cpu_ticks "$bb_pid" "$sb_pid")
ksent=$(kstatus | sed -n 's/^SMS: received .*, sent \([0-9]*\) .*/\1/p')
kill -KILL "$sb_pid" "$bb_pid" 2>/dev/null || true
wait "$sb_pid" "$bb_pid" 2>/dev/null || true
fake_stop
kannel_rate=$(rate "$MESSAGES" "$kannel_ms")
kannel_cpu=$(us_per "$kcpu0" "$kcpu1" "$MESSAGES")
kversion=$(dpkg-query -W -f '${Version}' kannel 2>/dev/null || true)
printf '%s: kannel %s: %s messages (1 a request, t=%s c=%s), HTTP SMSC generic, max-pending-submits %s, %s: accepted in %s s (%s/s), all received by the provider in %s s: %s messages/s end to end, bearerbox + smsbox CPU %s µs/message; Kannel counted %s sent%s\n' \
    "$NAME" "${kversion:-?}" "$MESSAGES" "$THREADS" "$CONNECTIONS" "$PROVIDER_CONCURRENCY" \
    "$([ "$KANNEL_STORE" = 1 ] && echo "store file ($(du -sh "$kdir/store" | cut -f1) on disk)" || echo "no store (memory only)")" \
    "$(secs "$kannel_accept_ms")" "$(rate "$MESSAGES" "$kannel_accept_ms")" "$(secs "$kannel_ms")" "$kannel_rate" \
    "$kannel_cpu" "${ksent:-?}" "${kannel_errors:+; wrk socket errors: $kannel_errors}"
summary
