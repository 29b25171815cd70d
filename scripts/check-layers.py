#!/usr/bin/env python3
"""The source tree's boundaries, checked over its #include lines.

src/ is cut into layers (docs/architecture.md draws the map); a file may
include headers of its own layer and of the layers below it, never above.
Within the tree no module (a .c/.cc file and the .h of the same name) may
reach itself again through includes: no import cycle, however long. And
each outside library's header belongs to the one place that wraps it.

Prints one PASS/FAIL line per check (the lines `make test` counts), with
every offending include named by file:line. Run from the repository root:
    python3 scripts/check-layers.py
"""
import os
import re
import sys

SRC = "src"

# Bottom to top. A folder not listed here is an error: a new folder takes
# its place in this list (and in docs/architecture.md) when it is made.
LAYERS = [
    "core",           # buffers, log, metrics, config: what everything uses
    "codec",          # JSON, text segments, templates, phone numbers, crypto
    "model",          # the message, its statuses, a submission
    "store",          # the durable store (LMDB) and what it announces
    "http",           # HTTP server and client
    "rules",          # the Lua host: states, sandbox, budgets, handlers, adapters
    "rules/bindings", # one file per sms.* table
    "delivery",       # scheduler, reports, route statistics
    "api",            # the HTTP API and webhooks
    "tools",          # test runner, simulator, mock provider
    "daemon",         # the app that wires everything, and main
]

# Outside headers and the only folders that may include them.
OWNERS = {
    "lmdb.h": ["store"],
    "curl/curl.h": ["http"],
    "llhttp.h": ["http"],
    "nats/nats.h": ["store"],
    "uv.h": None,  # everywhere: the loop is the daemon's spine
}

INCLUDE = re.compile(r'^\s*#\s*include\s+([<"])([^>"]+)[>"]', re.M)


def layer_of(path):
    """The longest LAYERS entry that is a folder prefix of path (under src/)."""
    rel = os.path.relpath(path, SRC)
    best = None
    for i, name in enumerate(LAYERS):
        if rel.startswith(name + "/") and (best is None or len(name) > len(LAYERS[best])):
            best = i
    return best


def sources():
    for root, _, files in os.walk(SRC):
        for f in sorted(files):
            if f.endswith((".c", ".cc", ".h")):
                yield os.path.join(root, f)


def includes(path):
    text = open(path, encoding="utf-8").read()
    for m in INCLUDE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        yield m.group(1), m.group(2), line


DECL = re.compile(r'^[A-Za-z_][^;(){}#]*?\b(sr_[A-Za-z0-9_]+)\s*\([^;{]*\);', re.M)
DEFN = re.compile(r'^(?!static\b)[A-Za-z_][^;(){}#]*?\b(sr_[A-Za-z0-9_]+)\s*\([^;]*?\)\s*\{', re.M)


def hidden_upward(files):
    """Functions a header declares but a file of a higher layer defines: an
    include-free way to depend upwards (the callee is above its declaration)."""
    declared = {}
    for f in files:
        if f.endswith(".h"):
            text = open(f, encoding="utf-8").read()
            for m in DECL.finditer(text):
                declared.setdefault(m.group(1), (f, text.count("\n", 0, m.start()) + 1))
    out = []
    for f in files:
        if f.endswith((".c", ".cc")):
            text = open(f, encoding="utf-8").read()
            for m in DEFN.finditer(text):
                name = m.group(1)
                if name in declared:
                    h, line = declared[name]
                    lh, lf = layer_of(h), layer_of(f)
                    if lh is not None and lf is not None and lf > lh:
                        out.append(f"{h}:{line}: declares {name}, defined above it in {f}")
    return out


def module(path):
    """A .c/.cc file and the .h of the same name; a module's private header (NAME_internal.h,
    shared by the module's files) belongs to the module too."""
    base = os.path.splitext(path)[0]
    return base[: -len("_internal")] if base.endswith("_internal") else base


def find_cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main():
    if not os.path.isdir(SRC):
        print("FAIL check-layers: run from the repository root", flush=True)
        return 1
    files = list(sources())
    upward, unplaced, foreign, missing = [], [], [], []
    edges = {}
    for f in files:
        lf = layer_of(f)
        if lf is None:
            unplaced.append(f)
            continue
        for kind, name, line in includes(f):
            if kind == "<":
                for header, owners in OWNERS.items():
                    if owners is not None and name == header:
                        if not any(os.path.relpath(f, SRC).startswith(o + "/") for o in owners):
                            foreign.append(f"{f}:{line}: <{name}> belongs to {', '.join('src/' + o for o in owners)}")
                continue
            target = os.path.join(SRC, name)
            if not os.path.exists(target):
                missing.append(f"{f}:{line}: \"{name}\" is not src/{name} (includes name their path under src/)")
                continue
            lt = layer_of(target)
            if lt is not None and lt > lf:
                upward.append(f"{f}:{line}: {LAYERS[lf]} includes {name} ({LAYERS[lt]} is above it)")
            if module(target) != module(f):
                edges.setdefault(module(f), set()).add(module(target))
    cycles = find_cycles(edges)
    checks = [
        ("every source file is in a layer folder", [f"{f}: not under any of {', '.join(LAYERS)}" for f in unplaced]),
        ("includes name their path under src/", missing),
        ("includes point only downwards", upward),
        ("no import cycle", [" <-> ".join(m[len(SRC) + 1:] for m in c) for c in cycles]),
        ("no header declares what a higher layer defines", hidden_upward(files)),
        ("outside headers stay with their wrapper", foreign),
    ]
    failed = 0
    for name, problems in checks:
        if problems:
            failed += 1
            print(f"FAIL check-layers: {name}")
            for p in problems:
                print(f"  {p}")
        else:
            print(f"PASS check-layers: {name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
