#!/bin/sh
# Runs the built fuzz targets one after another (make fuzz calls it):
#   scripts/fuzz.sh BUILD SECONDS TIMEOUT "TARGET:MAXLEN ..."
# Each target first reads tests/fuzz/seeds/NAME and tests/fuzz/corpus/NAME
# (when committed), then tries new inputs for SECONDS, kept in
# BUILD/fuzz/corpus/NAME. Its whole output goes to BUILD/fuzz/NAME.log; the
# final stats are printed as it ends. Once all have run, every failed target
# is reported again, last, so that the end of a CI log says what failed:
# the sanitizer's or libFuzzer's report and the input that failed, in
# base64 (up to 8 KB) to replay with
#   echo '...' | base64 -d > x; BUILD/fuzz/fuzz_NAME x
# Exit status 1 when any target failed.
set -u
build=$1 seconds=$2 timeout=$3 targets=$4
failed=""
for spec in $targets; do
    t=${spec%%:*} len=${spec#*:}
    log=$build/fuzz/$t.log
    echo "== fuzz $t ($seconds s)"
    mkdir -p "$build/fuzz/corpus/$t"
    # Inputs saved by earlier runs stay; the report names only this run's (newer than the stamp).
    touch "$build/fuzz/$t.start"
    committed=""
    [ -d "tests/fuzz/corpus/$t" ] && committed="tests/fuzz/corpus/$t"
    # shellcheck disable=SC2086 # committed is one directory or nothing
    if "$build/fuzz/fuzz_$t" -max_total_time="$seconds" -max_len="$len" -timeout="$timeout" \
        -artifact_prefix="$build/fuzz/$t-" -print_final_stats=1 \
        "$build/fuzz/corpus/$t" $committed "tests/fuzz/seeds/$t" >"$log" 2>&1; then
        grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log"
    else
        echo "fuzz $t FAILED (whole output: $log)"
        failed="$failed $t"
    fi
done
[ -z "$failed" ] && exit 0
for t in $failed; do
    log=$build/fuzz/$t.log
    echo
    echo "==== fuzz $t FAILED; its report ($log):"
    # From the first report line on, without libFuzzer's dictionary and stats.
    awk '/^==[0-9]+==|^[^ ]*: runtime error|ERROR: libFuzzer|^INFO: a leak|deadly signal|ALARM|out-of-memory|Assertion|^unexpected/ {on=1}
         /^###### Recommended dictionary/ {on=0} on' "$log" | head -n 80
    # find compares the times to the nanosecond (test -nt, in dash, to the second).
    for a in $(find "$build/fuzz" -maxdepth 1 -type f -newer "$build/fuzz/$t.start" \( -name "$t-crash-*" -o \
        -name "$t-timeout-*" -o -name "$t-leak-*" -o -name "$t-oom-*" \)); do
        size=$(wc -c <"$a")
        echo "the input: $a ($size bytes)"
        if [ "$size" -le 8192 ]; then
            echo "base64 (replay: echo '...' | base64 -d > x; $build/fuzz/fuzz_$t x):"
            base64 -w0 "$a"
            echo
        fi
    done
done
echo
echo "fuzz: failed:$failed"
exit 1
