#!/bin/sh
# Outbound benchmark: 200,000 messages accepted and delivered to the mock
# provider (see outbound.py for the settings).
set -eu
BUILD=${BUILD:-build}
export BUILD
exec python3 "$(dirname "$0")/outbound.py"
