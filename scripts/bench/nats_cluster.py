#!/usr/bin/env python3
"""A NATS JetStream cluster for the benchmarks (cluster.sh), held until told to stop.

    nats_cluster.py N OUT_FILE
    nats_cluster.py stream HTTP_PORT   prints the stream's messages, bytes and leader

Starts N nats-servers with JetStream on free loopback ports through
tests/e2e/natscluster.py (the cluster the e2e tests use: each server its own
config, store folder and log under one temporary folder; returns once
JetStream has a meta leader every server agrees on), then writes OUT_FILE:

    urls nats://127.0.0.1:P1,nats://127.0.0.1:P2,...
    pids PID1 PID2 ...
    http PORT1 PORT2 ...  (the servers' monitoring ports: /jsz, /healthz)
    dir  FOLDER

(written to OUT_FILE.tmp and renamed, so a reader never sees half of it) and
waits. SIGTERM or SIGINT stops every server (SIGTERM, then SIGKILL) and
removes the folder. The caller also tracks the
servers' pids itself: should this helper be SIGKILLed, it kills them.
Settings: NATS_MAX_FILE_STORE (each server's JetStream file limit, default
4GB: the stream keeps every unit of a run, ~1 KB an SMS),
NATS_SERVER (the binary).
"""
import json
import os
import signal
import sys
import threading
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "e2e"))

import harness  # noqa: E402 (after the path)
from natscluster import NatsCluster  # noqa: E402


def stream_figures(port):
    """'MESSAGES BYTES LEADER' of the stream the servers hold (one stream:
    cluster.sh starts a fresh cluster for each mode; LEADER: the name of the
    server that leads its Raft group, n0, n1, ... in the order of the pids,
    or ? when none), from /jsz on the monitoring PORT."""
    with urllib.request.urlopen("http://127.0.0.1:%d/jsz?streams=true" % port, timeout=10) as r:
        doc = json.load(r)
    msgs = total = 0
    leader = "?"
    for acc in doc.get("account_details") or []:
        for st in acc.get("stream_detail") or []:
            msgs += st["state"]["messages"]
            total += st["state"]["bytes"]
            leader = (st.get("cluster") or {}).get("leader") or leader
    return "%d %d %s" % (msgs, total, leader)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "stream":
        print(stream_figures(int(sys.argv[2])))
        return 0
    if len(sys.argv) != 3:
        sys.stderr.write("usage: nats_cluster.py N OUT_FILE\n")
        return 2
    n, out = int(sys.argv[1]), sys.argv[2]
    stop = threading.Event()
    # The handlers only set the flag: stopping runs on the main thread below.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    cluster = None
    try:
        cluster = NatsCluster.start(n, max_mem_store="256MB",
                                    max_file_store=os.environ.get("NATS_MAX_FILE_STORE", "4GB"))
        with open(out + ".tmp", "w") as f:
            f.write("urls %s\n" % cluster.urls())
            f.write("pids %s\n" % " ".join(str(s.proc.pid) for s in cluster.servers))
            f.write("http %s\n" % " ".join(str(s.http_port) for s in cluster.servers))
            f.write("dir %s\n" % cluster.dir)
        os.rename(out + ".tmp", out)

        while not stop.wait(1.0):
            for s in cluster.servers:
                if s.died():
                    sys.stderr.write("nats_cluster.py: nats-server %s exited (%s):\n%s\n"
                                     % (s.name, s.proc.returncode, cluster.log_tails()))
                    return 1
        return 0
    except harness.TestFailure as e:
        sys.stderr.write("nats_cluster.py: %s\n" % e)
        return 1
    finally:
        if cluster is not None:
            cluster.stop(timeout=5.0)
        harness._cleanup()


if __name__ == "__main__":
    sys.exit(main())

