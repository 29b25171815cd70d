#!/usr/bin/env python3
"""Summarises a perf recording of the daemon (e.g. `PERF=perf.data sh
scripts/bench/sendsms.sh`, best with PERF_ARGS="--call-graph dwarf,16384
-F 499": Debian's libraries have no frame pointers) in the shape of
docs/bench-profile-f3c2169.md, so a profile after a change reads beside the
one before it:

  python3 scripts/bench/perf_summary.py perf.data [TOP]

Prints the share of each thread and library, the TOP (default 15) symbols by
self time, our functions by inclusive time, the top call chains (our last
five frames, root > leaf, then where the time went: kernel, a library,
malloc/free), and who calls malloc/free, strcmp, strlen, memmove, libcurl,
LMDB and Lua (the first frame of our own above them)."""
import collections
import re
import subprocess
import sys

OURS = "smsrules"
MALLOC = re.compile(r"(^|_)(malloc|free|cfree|realloc|calloc)|_int_malloc|_int_free|malloc_consolidate|unlink_chunk|tcache")


def read_samples(path):
    """[(tid, [(symbol, dso), ...leaf first])] from `perf script`."""
    out = subprocess.run(["perf", "script", "-i", path, "-F", "tid,ip,sym,dso"], capture_output=True, text=True,
                         check=True).stdout
    samples, cur = [], None
    for line in out.splitlines():
        if not line.strip():
            if cur:
                samples.append(cur)
            cur = None
        elif not line.startswith("\t"):
            # The header line: perf pads the tid with spaces, the frames start with a tab.
            cur = (line.split()[0], [])
        elif cur is not None:
            m = re.match(r"\s*[0-9a-f]+ (.*) \((.*)\)$", line)
            if m:
                sym, dso = m.group(1), m.group(2).rsplit("/", 1)[-1]
                cur[1].append(("?@" + dso if sym == "[unknown]" else sym, dso))
    if cur:
        samples.append(cur)
    return [s for s in samples if s[1]]


def where(frame):
    """Where a leaf frame's time goes: None for our code, else kernel, malloc/free or the library."""
    sym, dso = frame
    if dso == OURS:
        return None
    if "kernel" in dso:
        return "kernel"
    if MALLOC.search(sym):
        return "malloc/free"
    return dso


def show(title, counter, n, top):
    print("\n" + title)
    for key, c in counter.most_common(top):
        print("  %5.1f%%  %s" % (100.0 * c / n, key))


def callers(samples, n):
    groups = [("malloc/free", lambda f: MALLOC.search(f[0])), ("strcmp", lambda f: "strcmp" in f[0]),
              ("strlen", lambda f: "strlen" in f[0]), ("memmove/memcpy", lambda f: re.search("mem(move|cpy)", f[0])),
              ("libcurl", lambda f: "libcurl" in f[1]), ("LMDB", lambda f: "liblmdb" in f[1]),
              ("Lua", lambda f: "liblua" in f[1])]
    for name, test in groups:
        c, total = collections.Counter(), 0
        for _, frames in samples:
            if test(frames[0]):
                total += 1
                ours = [f[0] for f in frames if f[1] == OURS]
                c[" < ".join(ours[:3]) or "?"] += 1
        show("%s: %.1f%% of samples; first own callers:" % (name, 100.0 * total / n), c, n, 6)


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    top = int(argv[2]) if len(argv) > 2 else 15
    samples = read_samples(argv[1])
    n = len(samples)
    if n == 0:
        sys.exit("perf_summary: no samples in %s" % argv[1])
    print("%d samples" % n)
    show("threads (tid):", collections.Counter(tid for tid, _ in samples), n, 10)
    show("self by library:", collections.Counter(f[0][1] for _, f in samples), n, 12)
    show("top self:", collections.Counter("%s  [%s]" % f[0] for _, f in samples), n, top)
    incl = collections.Counter()
    for _, frames in samples:
        incl.update(set(f[0] for f in frames if f[1] == OURS))
    show("inclusive, our functions:", incl, n, 30)
    chains = collections.Counter()
    for _, frames in samples:
        ours = [f[0] for f in frames if f[1] == OURS]
        path = " > ".join(reversed(ours[:5])) if ours else "(no frame of ours)"
        w = where(frames[0])
        chains[path + ("  => " + w if w else "")] += 1
    show("top call chains (our last 5 frames, root > leaf => where the time went):", chains, n, 25)
    callers(samples, n)


if __name__ == "__main__":
    main(sys.argv)
