#!/usr/bin/env python3
"""Functions stay short: at most MAX_LONG functions in src/ run over LIMIT
lines (signature to closing brace), and each of those says why in the
comment above it (a line with "long:"). Prints PASS/FAIL lines (the lines
`make test` counts). Run from the repository root:
    python3 scripts/check-functions.py [--list]"""
import os
import re
import sys

LIMIT = 60
MAX_LONG = 5
START = re.compile(r"^[A-Za-z_][^;#]*\(")


def functions(path):
    """(name, first line, length) of each function defined at column 0."""
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if START.match(line) and not line.startswith(("typedef", "struct", "enum", "static const", "const ")):
            j = i
            while j < len(lines) and not lines[j].rstrip().endswith(("{", ";")):
                j += 1
            if j < len(lines) and lines[j].rstrip().endswith("{") and not lines[j].startswith(" " * 4 + "}"):
                k = j + 1
                while k < len(lines) and lines[k] != "}":
                    k += 1
                name = re.search(r"([A-Za-z_0-9]+)\s*\(", line)
                before = []
                for b in range(i - 1, max(-1, i - 20), -1):
                    if lines[b] == "}":
                        break
                    before.append(lines[b])
                yield (name.group(1) if name else line.strip(), i + 1, k - i + 1, before)
                i = k + 1
                continue
        i += 1


def main():
    long_ones = []
    for root, _, files in os.walk("src"):
        for f in sorted(files):
            if f.endswith((".c", ".cc")):
                path = os.path.join(root, f)
                for name, line, length, before in functions(path):
                    if length > LIMIT:
                        reason = any("long:" in b for b in before)
                        long_ones.append((length, path, line, name, reason))
    long_ones.sort(reverse=True)
    if "--list" in sys.argv:
        for length, path, line, name, reason in long_ones:
            print("%4d %s:%d %s%s" % (length, path, line, name, "" if reason else " (no reason given)"))
    failed = 0
    if len(long_ones) > MAX_LONG:
        failed = 1
        print("FAIL check-functions: %d functions over %d lines (at most %d):" % (len(long_ones), LIMIT, MAX_LONG))
    unexplained = [x for x in long_ones if not x[4]]
    if unexplained:
        failed = 1
        print("FAIL check-functions: a function over %d lines says why in its comment (\"long: ...\"):" % LIMIT)
    if failed:
        for length, path, line, name, reason in long_ones:
            print("  %s:%d: %s, %d lines%s" % (path, line, name, length, "" if reason else ", no reason given"))
        return 1
    print("PASS check-functions: %d functions over %d lines, each with its reason" % (len(long_ones), LIMIT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
