#!/bin/sh
# Queued: accepts at 0 and at 1,000,000 messages queued behind a provider that
# is down, and the daemon's anonymous memory (see queued.py for the settings).
set -eu
BUILD=${BUILD:-build}
export BUILD
exec python3 "$(dirname "$0")/queued.py"
