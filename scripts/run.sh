#!/bin/sh
# `make run`: the mock provider on 127.0.0.1:9090 (stopped on exit), then the
# engine in the foreground with the quickstart rules on 127.0.0.1:8080.
set -eu
BIN=${BIN:-build/smsrules}
"$BIN" mock-provider --listen 127.0.0.1:9090 &
mock=$!
trap 'kill "$mock" 2>/dev/null || true' EXIT INT TERM
"$BIN" serve -c examples/quickstart/rules.lua "$@"
