#!/bin/sh
# Cluster mode end to end: one message per request through the single-node
# LMDB store, through 1 smsrules node and through NODES nodes on a NATS
# JetStream cluster, side by side in one run.
#
# Each mode in turn (MODES, default "lmdb 1 $NODES": "lmdb" is one daemon
# without --cluster, a number N is N daemons with --cluster and --node on a
# fresh NATS_SERVERS-server JetStream cluster on loopback, started by
# nats_cluster.py through tests/e2e/natscluster.py, stream replicas
# REPLICAS): the same MESSAGES single-message POST /v1/messages
# {"to","from","text"} from one wrk (CONNECTIONS in all; with N nodes, N
# threads, thread t sending to node t mod N, so the connections split evenly
# over the nodes and are rounded down to a multiple of N), every daemon with
# the same rules (the generic adapter to the same fake provider, nginx, as
# sendsms.sh). Timed from the first request until the nodes'
# smsrules_provider_sent_total add up to MESSAGES (accepted → provider
# answered → `sent` committed; in cluster mode committed = stored on a
# quorum of the stream's servers and applied by the node's replica). CPU per
# message from /proc/PID/stat before and after: of the smsrules daemons (all
# threads, all nodes) and of the nats-servers (all of them), separately.
# Each mode starts its own daemons and NATS cluster and stops them after, so
# no mode inherits another's stream or load.
#
# Prints one line per mode (the rates; the daemons' CPU split into their loop
# threads and the rest: writer, replica applier, NATS client; each
# nats-server's CPU, the stream's leader named; the stream's messages, units
# each and bytes an SMS), then a table of the modes side by side.
#
# Settings: lib.sh's (CONNECTIONS, PIN: the daemons on CPU 0, BUILD,
# SMSRULES_BIN); MESSAGES (default 30,000 a mode); NODES (default 3);
# MODES; NATS_SERVERS (default 3); REPLICAS (cluster_replicas, default 3,
# at most NATS_SERVERS); PROVIDER_CONCURRENCY (each node's, default 64);
# STALL (seconds without progress before giving up, default 60); PERF=FILE
# records `perf record -g` of the first daemon of mode PERF_MODE (default
# the last of MODES; PERF_ARGS replaces -g) and PERF_NATS=FILE of the
# nats-servers in that mode (perf_summary.py summarises the daemon's).
# Installs nats-server, wrk, nginx-light (and linux-perf for PERF) with
# apt-get when missing (as root).
set -eu
NAME=cluster.sh
. "$(dirname "$0")/lib.sh"

MESSAGES=${MESSAGES:-30000}
NODES=${NODES:-3}
MODES=${MODES:-"lmdb 1 $NODES"}
NATS_SERVERS=${NATS_SERVERS:-3}
REPLICAS=${REPLICAS:-$((NATS_SERVERS < 3 ? NATS_SERVERS : 3))}
PROVIDER_CONCURRENCY=${PROVIDER_CONCURRENCY:-64}
STALL=${STALL:-60}
PERF=${PERF:-}
PERF_NATS=${PERF_NATS:-}
PERF_MODE=${PERF_MODE:-${MODES##* }}
KEY=bench-key
CONNECTIONS_ASKED=$CONNECTIONS
THREADS_ASKED=$THREADS
bench_need nats-server nats-server
if [ -n "$PERF$PERF_NATS" ]; then
    bench_need perf linux-perf
fi

load_before=$(load)
sync_before=$(disk_sync)
fake_start

cat >"$work/rules.lua" <<LUA
sms.config{ api_keys = { "$KEY" }, default_country = "84", cluster_replicas = $REPLICAS }
sms.provider("fake", { adapter = "generic", url = "http://127.0.0.1:$fake_port/send",
                       concurrency = $PROVIDER_CONCURRENCY })
LUA

# plural N: "s" unless N is 1.
plural() { [ "$1" = 1 ] || echo s; }

# ---- the NATS cluster of a mode ----

nats_helper=""
nats_pids=""
nats_urls=""
nats_http=""

# nats_start: starts NATS_SERVERS nats-servers (a fresh JetStream cluster);
# sets $nats_urls and $nats_pids (tracked: killed on exit even should the
# helper be killed first).
nats_start() {
    out="$work/nats.$mode"
    # Its folder (stores, configs, logs) under $work: removed on exit even should the helper be killed.
    TMPDIR=$work python3 "$bench_dir/nats_cluster.py" "$NATS_SERVERS" "$out" 2>"$work/nats.$mode.err" &
    nats_helper=$!
    bench_track "$nats_helper"
    nats_ready() {
        kill -0 "$nats_helper" 2>/dev/null || { cat "$work/nats.$mode.err" >&2; fail "the NATS cluster did not start"; }
        test -s "$out"
    }
    wait_until 120 nats_ready || fail "the NATS cluster was not ready within 120 s"
    nats_urls=$(sed -n 's/^urls //p' "$out")
    nats_pids=$(sed -n 's/^pids //p' "$out")
    nats_http=$(sed -n 's/^http \([0-9]*\).*/\1/p' "$out")
    for p in $nats_pids; do bench_track "$p"; done
}

# nats_stop: stops the servers (the helper ends them, SIGTERM then SIGKILL) and removes their folder.
nats_stop() {
    [ -n "$nats_helper" ] || return 0
    kill -TERM "$nats_helper" 2>/dev/null || true
    wait "$nats_helper" 2>/dev/null || true
    for p in $nats_pids; do kill -KILL "$p" 2>/dev/null || true; done
    nats_helper=""
    nats_pids=""
}

# ---- the smsrules daemons of a mode ----

node_pids=""
node_ports=""

# node_start DIR [serve arguments...]: starts a daemon with the rules, its
# data and log in DIR; appends it to $node_pids and $node_ports.
node_start() {
    dir=$1
    shift
    mkdir -p "$dir/data"
    : >"$dir/daemon.log"
    # shellcheck disable=SC2086 # $daemon_pin is a command prefix or empty
    $daemon_pin "$BIN" serve --listen 127.0.0.1:0 --data "$dir/data" --log-level info -c "$work/rules.lua" "$@" \
        2>"$dir/daemon.log" &
    npid=$!
    bench_track "$npid"
    node_listening() {
        kill -0 "$npid" 2>/dev/null || { cat "$dir/daemon.log" >&2; fail "a daemon exited at start"; }
        nport=$(sed -n 's/.*"msg":"listening".*"port":\([0-9][0-9]*\).*/\1/p' "$dir/daemon.log" | head -n 1)
        [ -n "$nport" ]
    }
    wait_until 60 node_listening || { cat "$dir/daemon.log" >&2; fail "a daemon did not listen within 60 s"; }
    node_pids="$node_pids $npid"
    node_ports="$node_ports $nport"
}

# nodes_stop: SIGTERM to every daemon; fails when one does not exit 0.
nodes_stop() {
    for p in $node_pids; do kill -TERM "$p" 2>/dev/null || true; done
    for p in $node_pids; do
        rc=0
        wait "$p" || rc=$?
        [ "$rc" -eq 0 ] || fail "a daemon ($mode) exited $rc after SIGTERM"
    done
    node_pids=""
    node_ports=""
}

# nodes_metric NAME{LABELS}: the sum of one series over the daemons.
nodes_metric() {
    sum=0
    for p in $node_ports; do
        v=$(curl -s --max-time 10 "http://127.0.0.1:$p/metrics" | awk -v k="$1" '$1 == k { v = $2 } END { printf "%d\n", v + 0 }')
        sum=$((sum + v))
    done
    echo "$sum"
}

# loops_ticks: the CPU ticks of the daemons' loop threads (the rest: the store's writer, in cluster
# mode the applier of the replica and the NATS client's threads).
loops_ticks() {
    t=0
    for p in $node_pids; do t=$((t + $(loop_ticks "$p"))); done
    echo "$t"
}

sent_count() { count=$(nodes_metric 'smsrules_provider_sent_total{provider="fake"}'); }

# ---- one mode ----

# run_mode MODE: starts the mode's NATS cluster (a cluster mode) and
# daemons, sends MESSAGES, stops everything; sets the mode's figures
# (r_MODE: messages/s, a_MODE: accepted/s, c_MODE: daemons' µs a message,
# n_MODE: nats-servers' µs a message, k_MODE: the daemons' cores, q_MODE: the connections).
run_mode() {
    mode=$1
    mdir="$work/$mode"
    mkdir -p "$mdir"
    if [ "$mode" = lmdb ]; then
        nn=1
        node_start "$mdir/node1"
        label="single node, LMDB"
    else
        nn=$mode
        nats_start
        i=1
        while [ "$i" -le "$nn" ]; do
            node_start "$mdir/node$i" --cluster "$nats_urls" --node "node$i"
            i=$((i + 1))
        done
        label="cluster, $nn node$(plural "$nn") on $NATS_SERVERS nats-servers (replicas $REPLICAS)"
    fi
    # One wrk thread a node (2 for one node, as the other scripts); the connections split evenly.
    THREADS=$THREADS_ASKED
    if [ "$nn" -gt 1 ]; then THREADS=$nn; fi
    CONNECTIONS=$((CONNECTIONS_ASKED - CONNECTIONS_ASKED % THREADS))
    {
        printf 'local headers = { ["Authorization"] = "Bearer %s", ["Content-Type"] = "application/json" }\n' "$KEY"
        # shellcheck disable=SC2086 # split and joined again: the list without its leading space
        printf 'local ports = { %s }\n' "$(echo $node_ports | tr ' ' ',')"
        cat <<'LUA'
local addrs = {}
for i, p in ipairs(ports) do addrs[i] = wrk.lookup("127.0.0.1", tostring(p))[1] end
function thread_setup(thread, tid)
  thread.addr = addrs[(tid - 1) % #addrs + 1]
end
function make_request(n, tid)
  local k = (tid - 1) * 5000000 + n
  return wrk.format("POST", "/v1/messages", headers, string.format(
    '{"to":"+8491%07d","from":"Shop","text":"Your order %d has shipped. Track it at example.com/t/%d"}',
    k % 10000000, k, k))
end
LUA
    } >"$mdir/post.lua"

    first=${node_pids# }
    first=${first%% *}
    if [ "$mode" = "$PERF_MODE" ]; then
        pid=$first
        perf_start
        pid=""
        if [ -n "$PERF_NATS" ]; then
            [ -n "$nats_pids" ] || fail "PERF_NATS: mode $mode has no nats-servers"
            # shellcheck disable=SC2086 # PERF_ARGS: perf's options
            perf record ${PERF_ARGS:--g} -o "$PERF_NATS" -p "$(echo $nats_pids | tr ' ' ',')" >"$work/perf-nats.log" 2>&1 &
            perf_nats_pid=$!
            bench_track "$perf_nats_pid"
            wait_until 10 test -s "$PERF_NATS" || fail "perf record (nats) did not start: $(cat "$work/perf-nats.log")"
        fi
    fi
    # shellcheck disable=SC2086 # pid lists
    cpu0=$(cpu_ticks $node_pids)
    loop0=$(loops_ticks)
    # shellcheck disable=SC2086
    ncpu0=$([ -n "$nats_pids" ] && cpu_ticks $nats_pids || echo 0)
    nats_each0=$(for p in $nats_pids; do cpu_ticks "$p"; done)
    t0=$(now_ms)
    wrk_quota "http://127.0.0.1:${node_ports##* }/v1/messages" "$MESSAGES" "$mdir/post.lua"
    wrk_quota_wait 3600
    accept_ms=$((t_sent_all - t0))
    wait_count sent_count "$MESSAGES" "$STALL" ||
        fail "$label: $count of $MESSAGES messages sent, no progress for $STALL s ($(nodes_metric 'smsrules_http_requests_total{route="/v1/messages",code="202"}') accepted)"
    ms=$((t_reached - t0))
    # shellcheck disable=SC2086
    cpu1=$(cpu_ticks $node_pids)
    loop1=$(loops_ticks)
    # shellcheck disable=SC2086
    ncpu1=$([ -n "$nats_pids" ] && cpu_ticks $nats_pids || echo 0)
    nats_each1=$(for p in $nats_pids; do cpu_ticks "$p"; done)
    wrk_quota_end
    if [ "$mode" = "$PERF_MODE" ]; then
        perf_stop
        if [ -n "$PERF_NATS" ]; then
            kill -INT "$perf_nats_pid" 2>/dev/null || true
            wait "$perf_nats_pid" 2>/dev/null || true
        fi
    fi
    accepted=$(nodes_metric 'smsrules_http_requests_total{route="/v1/messages",code="202"}')
    failed=$(nodes_metric 'smsrules_provider_failed_total{provider="fake"}')
    retried=$(nodes_metric 'smsrules_provider_retried_total{provider="fake"}')
    units=$(nodes_metric smsrules_store_units_total)
    commits=$(nodes_metric smsrules_store_commits_total)
    per_node=""
    for p in $node_ports; do
        per_node="$per_node $(curl -s "http://127.0.0.1:$p/metrics" |
            awk '$1 == "smsrules_provider_sent_total{provider=\"fake\"}" { printf "%d", $2 }')"
    done
    stream=""
    if [ "$mode" != lmdb ]; then
        # shellcheck disable=SC2046 # two numbers and a name
        set -- $(python3 "$bench_dir/nats_cluster.py" stream "$nats_http")
        stream=$(awk -v m="$1" -v b="$2" -v n="$MESSAGES" -v u="$units" -v nn="$nn" 'BEGIN {
            printf "; the stream: %d messages (%.1f units each), %.1f MB (%.0f bytes an SMS)",
                m, (m > 0 ? u / nn / m : 0), b / 1e6, b / n }')
        # Each server's share (n0, n1, ... in the order of $nats_pids), its leader marked.
        stream="$stream; nats-servers apart:$(printf '%s\n%s\n' "$nats_each0" "$nats_each1" | awk -v l="$3" -v n="$MESSAGES" \
            -v hz="$(getconf CLK_TCK)" '{ a[NR] = $0 } END { k = NR / 2; for (i = 1; i <= k; i++)
                printf " n%d %.1f µs%s", i - 1, (a[k + i] - a[i]) * 1e6 / hz / n, ("n" (i - 1) == l ? " (stream leader)" : "") }')"
    fi
    nodes_stop
    nats_stop
    [ "$accepted" -eq "$MESSAGES" ] || fail "$label: accepted $accepted of $MESSAGES requests"
    eval "r_$mode=\$(rate \"\$MESSAGES\" \"\$ms\")"
    eval "a_$mode=\$(rate \"\$MESSAGES\" \"\$accept_ms\")"
    eval "c_$mode=\$(us_per \"\$cpu0\" \"\$cpu1\" \"\$MESSAGES\")"
    nats_us=-
    [ "$mode" = lmdb ] || nats_us=$(us_per "$ncpu0" "$ncpu1" "$MESSAGES")
    eval "n_$mode=\$nats_us"
    nats_text="no nats-servers"
    [ "$mode" = lmdb ] || nats_text="nats-servers $nats_us µs ($(core_pct $((ncpu1 - ncpu0)) "$ms")% of a core)"
    eval "k_$mode=\$(core_pct \$((cpu1 - cpu0)) \"\$ms\")"
    eval "q_$mode=\$CONNECTIONS"
    printf '%s: %s: %s messages (1 a request, wrk t=%s c=%s), accepted in %s s (%s/s), all sent (committed) in %s s: %s messages/s end to end; CPU a message: smsrules %s µs (%s%% of a core: loop threads %s%%, writer, applier and other threads %s%%), %s; sent by node:%s; %s store units in %s commits; the provider answered %s retried, %s failed%s%s\n' \
        "$NAME" "$label" "$MESSAGES" "$THREADS" "$CONNECTIONS" "$(secs "$accept_ms")" \
        "$(rate "$MESSAGES" "$accept_ms")" "$(secs "$ms")" "$(rate "$MESSAGES" "$ms")" \
        "$(us_per "$cpu0" "$cpu1" "$MESSAGES")" "$(core_pct $((cpu1 - cpu0)) "$ms")" \
        "$(core_pct $((loop1 - loop0)) "$ms")" "$(core_pct $((cpu1 - cpu0 - loop1 + loop0)) "$ms")" \
        "$nats_text" "$per_node" \
        "$units" "$commits" "$retried" "$failed" "$stream" "${wrk_errors:+; wrk socket errors: $wrk_errors}"
}

for m in $MODES; do
    case "$m" in
        lmdb | [1-9] | [1-9][0-9]) ;;
        *) fail "MODES: '$m' is neither lmdb nor a node count" ;;
    esac
    run_mode "$m"
done
fake_stop

# ---- the modes side by side ----

printf '\n%-48s %7s %12s %11s %16s %14s %13s\n' mode clients 'messages/s' accepted/s 'smsrules µs/msg' 'nats µs/msg' 'smsrules core'
for m in $MODES; do
    if [ "$m" = lmdb ]; then
        l="single node, LMDB (no --cluster)"
    else
        l="cluster, $m node$(plural "$m"), $NATS_SERVERS nats-servers, R$REPLICAS"
    fi
    eval "q=\$q_$m r=\$r_$m a=\$a_$m c=\$c_$m nu=\$n_$m k=\$k_$m"
    # shellcheck disable=SC2154 # set by the eval above
    printf '%-48s %7s %12s %11s %16s %14s %12s%%\n' "$l" "$q" "$r" "$a" "$c" "$nu" "$k"
done
printf '%s: load average %s before, %s after; disk %s before, %s after\n' \
    "$NAME" "$load_before" "$(load)" "$sync_before" "$(disk_sync)"
