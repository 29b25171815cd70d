"""Queued: accepts with an empty queue and with 1,000,000 messages queued
behind a provider that is down (nothing listens on its port), side by side in
one run, and the daemon's anonymous memory (RssAnon: its own heap, not the
LMDB map's file pages). The queue lives in the store, so neither the accept
rate nor the memory should grow with the queue.

  1. after WARMUP messages (default 10,000: a cold daemon and client would
     flatter the comparison), PROBE messages (default 50,000) in batches of
     1,000 on a (nearly) empty queue: accepted/s and the daemon's CPU µs a
     message;
  2. fill the queue up to MESSAGES (default 1,000,000);
  3. PROBE messages again, now behind MESSAGES queued: accepted/s, CPU µs;
  4. 5 s more of the scheduler meeting the dead provider (retries, breaker,
     queue scans), the peak RssAnon sampled throughout.
Environment: MESSAGES, PROBE, WARMUP, BUILD (default build), SMSRULES_BIN."""
import os
import subprocess
import sys
import tempfile
import time

from fake_provider import free_port
from outbound import BIN, AnonSampler, daemon_cpu_s, disk_sync, load, metric, post_batches, start

N = int(os.environ.get("MESSAGES", "1000000"))
PROBE = int(os.environ.get("PROBE", "50000"))
WARMUP = int(os.environ.get("WARMUP", "10000"))
BATCH = 1000
CLIENTS = 4


def probe(pid, port, count, label):
    """Posts count messages; returns (accepted/s, daemon CPU µs a message, refused batches)."""
    cpu0 = daemon_cpu_s(pid)
    t0 = time.time()
    refused = post_batches(port, count // BATCH, BATCH, CLIENTS, label=label)
    seconds = time.time() - t0
    return count / seconds, (daemon_cpu_s(pid) - cpu0) * 1e6 / count, refused


def main():
    if PROBE < BATCH or N < 2 * PROBE + WARMUP:
        sys.exit("queued: PROBE must be at least %d and MESSAGES at least twice PROBE plus WARMUP" % BATCH)
    work = tempfile.mkdtemp(prefix="smsrules-bench-")
    rules = os.path.join(work, "rules.lua")
    with open(rules, "w") as f:
        f.write('sms.config{ api_keys = { "bench" } }\n'
                'sms.provider("down", { adapter = "mock", url = "http://127.0.0.1:%d/send" })\n' % free_port())
    os.mkdir(os.path.join(work, "data"))
    load_before = load() + "; disk " + disk_sync(work)
    daemon, port = start([BIN, "serve", "-c", rules, "--listen", "127.0.0.1:0", "--data", os.path.join(work, "data")],
                         os.path.join(work, "daemon.log"))
    try:
        sampler = AnonSampler(daemon.pid, every_s=0.05)
        if WARMUP:
            # A cold daemon and client (first connections, allocator, caches) would make the
            # empty-queue figure look slower than it is, and the 1,000,000 one flattering.
            post_batches(port, WARMUP // BATCH, BATCH, CLIENTS, label="Warm-up %d")
        depth0 = metric(port, "smsrules_queue_depth")
        empty = probe(daemon.pid, port, PROBE, "Your order %d")
        t0 = time.time()
        refused = post_batches(port, (N - PROBE - WARMUP) // BATCH, BATCH, CLIENTS, label="Your order %d")
        fill_s = time.time() - t0
        depth = metric(port, "smsrules_queue_depth")
        full = probe(daemon.pid, port, PROBE, "Your order %d")
        time.sleep(5)  # an observation window for the memory, not a synchronisation
        sampler.stop()
        now_kb = sampler.now_kb()
        load_after = load() + "; disk " + disk_sync(work)
    finally:
        daemon.terminate()
        daemon.wait()
        subprocess.run(["rm", "-rf", work])
    refused = empty[2] + refused + full[2]
    print("queued.sh: accepts in batches of %d behind a provider that is down: %.0f/s (%.1f µs CPU/message) at %d "
          "queued, %.0f/s (%.1f µs) at %d queued: %.0f%% of the empty-queue rate (aim: not slower); filled at %.0f/s; "
          "daemon anonymous memory (RssAnon) peak %.1f MB, %.1f MB 5 s later (aim ≤ 100 MB); load average %s before, "
          "%s after%s" % (BATCH, empty[0], empty[1], depth0, full[0], full[1], depth, 100.0 * full[0] / empty[0],
                          (N - PROBE - WARMUP) / fill_s, sampler.peak_kb / 1024.0, now_kb / 1024.0, load_before, load_after,
                          "; %d batches refused" % len(refused) if refused else ""))
    if refused:
        sys.exit(1)


if __name__ == "__main__":
    main()
