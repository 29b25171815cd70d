#!/bin/sh
# Outbound benchmark: 200,000 messages accepted in batches of 1,000 and sent
# to the fake provider (nginx; see outbound.py for the settings).
set -eu
NAME=outbound.sh
BUILD=${BUILD:-build}
export BUILD
. "$(dirname "$0")/need.inc"
bench_need nginx nginx-light
exec python3 "$(dirname "$0")/outbound.py"
