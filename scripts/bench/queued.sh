#!/bin/sh
# Queued memory: 1,000,000 messages behind a provider that is down, and the
# daemon's peak anonymous memory (see queued.py for the settings).
set -eu
BUILD=${BUILD:-build}
export BUILD
exec python3 "$(dirname "$0")/queued.py"
