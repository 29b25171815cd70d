#!/usr/bin/env python3
"""The manual's links hold: every relative link in README.md, docs/, and the
Markdown beside the code (src/, lua/, examples/, contrib/) names a file of
the repository, and every #anchor a heading of that file (GitHub's slugs).
README.md stays a landing page: at most 12,000 characters.

Prints PASS/FAIL lines (the lines `make test` counts), each broken link by
file:line. Run from the repository root: python3 scripts/check-docs.py"""
import os
import re
import subprocess
import sys

README_MAX = 12000
LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def markdown_files():
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "*.md"], capture_output=True, text=True,
                         check=True).stdout.split()
    return sorted(f for f in out if os.path.isfile(f) and not f.startswith(("build/", "vendor/")))


def slug(heading):
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors_of(path, cache={}):
    if path not in cache:
        found, seen, fenced = set(), {}, False
        for line in open(path, encoding="utf-8"):
            if FENCE.match(line):
                fenced = not fenced
                continue
            m = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
            if m:
                base = slug(m.group(1))
                n = seen.get(base, 0)
                seen[base] = n + 1
                found.add(base if n == 0 else "%s-%d" % (base, n))
        cache[path] = found
    return cache[path]


def broken_links(path):
    out, fenced = [], False
    for lineno, line in enumerate(open(path, encoding="utf-8"), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            continue
        for m in LINK.finditer(re.sub(r"`[^`]*`", "", line)):
            target = m.group(1)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
            if not os.path.exists(dest):
                out.append("%s:%d: %s: no such file" % (path, lineno, target))
            elif anchor and dest.endswith(".md") and anchor not in anchors_of(dest):
                out.append("%s:%d: %s: %s has no heading #%s" % (path, lineno, target, dest, anchor))
    return out


def main():
    if not os.path.isfile("README.md"):
        print("FAIL check-docs: run from the repository root")
        return 1
    problems = []
    for f in markdown_files():
        problems += broken_links(f)
    failed = 0
    if problems:
        failed += 1
        print("FAIL check-docs: relative links resolve")
        for p in problems:
            print("  " + p)
    else:
        print("PASS check-docs: relative links resolve")
    size = len(open("README.md", encoding="utf-8").read())
    if size > README_MAX:
        failed += 1
        print("FAIL check-docs: README.md is a landing page (%d characters, at most %d: move detail to docs/)"
              % (size, README_MAX))
    else:
        print("PASS check-docs: README.md is a landing page (%d characters)" % size)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
