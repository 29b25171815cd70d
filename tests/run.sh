#!/bin/sh
# Runs every test: C unit tests, end-to-end tests (the real daemon over real
# HTTP), and rule tests through `smsrules test`. Ends with "N passed, N failed".
set -u
BUILD=${BUILD:-build}
export SMSRULES_BIN="$PWD/$BUILD/smsrules"
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# The source tree's boundaries (includes point downwards, no import cycle), the manual's links,
# short functions and the format.
python3 scripts/check-layers.py 2>&1 | tee -a "$out"
python3 scripts/check-docs.py 2>&1 | tee -a "$out"
python3 scripts/check-functions.py 2>&1 | tee -a "$out"
scripts/check-format.sh 2>&1 | tee -a "$out"

for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    "$t" 2>&1 | tee -a "$out"
done

for t in tests/e2e/test_*.py; do
    [ -f "$t" ] || continue
    python3 "$t" 2>&1 | tee -a "$out"
done

for t in examples/*/*_test.lua tests/lua/*_test.lua; do
    [ -f "$t" ] || continue
    "$SMSRULES_BIN" test "$t" 2>&1 | tee -a "$out"
done

passed=$(grep -c '^PASS ' "$out")
failed=$(grep -c '^FAIL ' "$out")
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
