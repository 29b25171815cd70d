#!/bin/sh
# The C sources follow .clang-format: prints "PASS check-format" or
# "FAIL check-format" with the files `make fmt` would change (the lines
# `make test` counts). Run from the repository root.
set -u
if ! command -v clang-format >/dev/null 2>&1; then
    echo "FAIL check-format: clang-format is missing (scripts/install-deps.sh installs it)"
    exit 1
fi
bad=""
for f in $(git ls-files 'src/*.c' 'src/*.cc' 'src/*.h' 'tests/unit/*.c' 'tests/unit/*.h' 'tests/fuzz/*.c' 2>/dev/null); do
    [ -f "$f" ] || continue
    clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad="$bad $f"
done
if [ -n "$bad" ]; then
    echo "FAIL check-format: not formatted as .clang-format says (make fmt formats them):"
    for f in $bad; do echo "  $f"; done
    exit 1
fi
echo "PASS check-format"
